/**
 * `npm run bench -- distributed [--clips N] [--rounds R] [--json]`: a distributed export over a
 * real nats-server (started here on a loopback port, JetStream on a temporary store) with one and
 * with two `st-inpaint worker` processes, against the same export run locally, in alternating
 * rounds. Prints clips/s of each, the ratios to the local run, and the bytes that crossed the
 * server per clip (its /varz counters: work items, results through the object store, notices, in
 * and out). The export: synthetic clips of 16 frames at 64×64 under raindrops, parts of 8 clips.
 * Figures go to `bench/results/distributed.jsonl`. Skipped, saying so, without nats-server.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../cli/main.ts';
import { natsMissing, startNatsServer, startWorker, type WorkerProcess } from '../tests/fixtures/nats.ts';
import { recordFigures } from './record.ts';

function option(args: readonly string[], name: string, fallback: number): number {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function varz(monitor: string): Promise<{ in: number; out: number }> {
  const v = (await (await fetch(`${monitor}/varz`)).json()) as { in_bytes: number; out_bytes: number };
  return { in: v.in_bytes, out: v.out_bytes };
}

export async function distributedBench(json: boolean, args: readonly string[]): Promise<void> {
  const missing = natsMissing();
  if (missing) {
    console.log(`distributed bench skipped: ${missing}`);
    return;
  }
  const clips = option(args, 'clips', 192);
  const rounds = option(args, 'rounds', 3);
  const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-distributed-bench-'));
  const server = await startNatsServer({ monitor: true });
  const workers: WorkerProcess[] = [];
  const quiet = { out: () => {}, err: () => {} };
  const exportArgs = (out: string) => ['export', 'synthetic', '--dataset-option', `clips=${clips}`, '--dataset-option', 'frames=16', '--dataset-option', 'size=64', '--occlusion', 'raindrops', '--out', out, '--runs', join(scratch, 'runs'), '--shard-clips', '64'];
  let n = 0;
  const timed = async (extra: string[]): Promise<{ seconds: number; bytes: number }> => {
    const before = await varz(server.monitor!);
    const started = performance.now();
    const code = await main([...exportArgs(join(scratch, `out-${n++}`)), ...extra], quiet);
    if (code !== 0) throw new Error(`export exited with ${code}`);
    const seconds = (performance.now() - started) / 1000;
    const after = await varz(server.monitor!);
    return { seconds, bytes: after.in - before.in + after.out - before.out };
  };
  const ready = async (count: number): Promise<void> => {
    while (workers.length < count) {
      const w = startWorker(server.url);
      await w.waitFor(/taking work from/);
      workers.push(w);
    }
    while (workers.length > count) {
      const w = workers.pop()!;
      w.child.kill('SIGTERM');
      await w.exited;
    }
  };
  const distributed = ['--nats', server.url, '--part-clips', '8'];
  try {
    await ready(1);
    await timed([]); // warm-up: page cache, the JIT of the local path
    await timed(distributed);
    const local: number[] = [];
    const one: number[] = [];
    const two: number[] = [];
    const wire: number[] = [];
    for (let r = 0; r < rounds; r++) {
      local.push((await timed([])).seconds);
      await ready(1);
      const a = await timed(distributed);
      one.push(a.seconds);
      wire.push(a.bytes / clips);
      await ready(2);
      two.push((await timed(distributed)).seconds);
      console.log(`round ${r + 1}: local ${local.at(-1)!.toFixed(2)} s, 1 worker ${one.at(-1)!.toFixed(2)} s, 2 workers ${two.at(-1)!.toFixed(2)} s`);
    }
    const rate = (s: number): number => Number((clips / s).toFixed(1));
    const figures = {
      clips,
      rounds,
      clipBytes: 16 * 64 * 64,
      localClipsPerSecond: rate(median(local)),
      oneWorkerClipsPerSecond: rate(median(one)),
      twoWorkersClipsPerSecond: rate(median(two)),
      oneWorkerVsLocal: Number((median(local) / median(one)).toFixed(2)),
      twoWorkersVsLocal: Number((median(local) / median(two)).toFixed(2)),
      twoWorkersVsOne: Number((median(one) / median(two)).toFixed(2)),
      wireBytesPerClip: Math.round(median(wire)),
    };
    console.log(
      `${clips} clips (16×64×64, clean + raindrops) on ${availableParallelism()} cores: local ${figures.localClipsPerSecond} clips/s; 1 worker ${figures.oneWorkerClipsPerSecond} (${figures.oneWorkerVsLocal}× local); 2 workers ${figures.twoWorkersClipsPerSecond} (${figures.twoWorkersVsLocal}× local, ${figures.twoWorkersVsOne}× one worker); ${(figures.wireBytesPerClip / 1024).toFixed(1)} KiB through the server per clip (a clip's clean + observed pixels and mask are ${((2 * 16 * 64 * 64 + 16 * 64 * 64) / 1024).toFixed(0)} KiB)`,
    );
    recordFigures('distributed', figures);
    if (json) console.log(JSON.stringify(figures));
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
    await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

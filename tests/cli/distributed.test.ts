/**
 * Distributed export over a real nats-server with JetStream (started here on a loopback port)
 * and real `st-inpaint worker` processes: three workers export 128 synthetic clips while one is
 * killed with -9 in the middle of a part, and the shards equal a local export byte for byte; a
 * coordinator killed and restarted with --resume finishes the job; a dataset without its own parts
 * is cut by clip positions; apply fills a folder of videos on the workers as a local apply does;
 * a worker with the wrong token is refused with one line.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { main } from '../../cli/main.ts';
import demo from '../../graphs/demo.ts';
import kthRaindrops from '../../graphs/kth-raindrops.ts';
import { remoteDataset } from '../../graphs/lib/distribute.ts';
import { findDataset } from '../../datasets/index.ts';
import { openNats } from '../../pipeline/nats.ts';
import { pull } from '../../pipeline/operators/pull.ts';
import { writeKthFixture } from '../fixtures/kth.ts';
import { runGraph } from '../../pipeline/runner.ts';
import { FrameReader, ffmpegPath, probeVideo } from '../../stages/io/video.ts';
import { CLI, natsMissing, startNatsServer, startWorker, type NatsServer, type WorkerProcess } from '../fixtures/nats.ts';

const missing = natsMissing();
const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-distributed-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Every file under `dir`, relative path → bytes. */
function files(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const visit = (d: string): void => {
    for (const entry of readdirSync(d)) {
      const path = join(d, entry);
      if (statSync(path).isDirectory()) visit(path);
      else out.set(relative(dir, path), readFileSync(path));
    }
  };
  visit(dir);
  return out;
}

function assertSameExport(a: string, b: string): void {
  const left = files(a);
  const right = files(b);
  assert.deepEqual([...right.keys()].sort(), [...left.keys()].sort());
  for (const [name, bytes] of left) assert.ok(bytes.equals(right.get(name)!), `${name} differs`);
}

const quiet = { out: () => {}, err: () => {} };

async function allFrames(path: string): Promise<Uint8Array[]> {
  const { width, height } = probeVideo(path);
  const reader = new FrameReader(path, width * height, 'gray');
  const out: Uint8Array[] = [];
  for (let f = await reader.next(); f; f = await reader.next()) out.push(f);
  return out;
}
// 128 clips of 16 frames at 48×48 under raindrops: parts of 4 clips take long enough to be caught mid-way.
const DATASET = ['export', 'synthetic', '--dataset-option', 'clips=128', '--dataset-option', 'frames=16', '--dataset-option', 'size=48', '--occlusion', 'raindrops', '--shard-clips', '20'];

describe('distributed export', { skip: missing }, () => {
  let server: NatsServer;
  const workers: WorkerProcess[] = [];
  const local = join(scratch, 'local');
  before(async () => {
    server = await startNatsServer();
    assert.equal(await main([...DATASET, '--out', local, '--runs', join(scratch, 'runs')], quiet), 0);
  });
  after(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    await server?.stop();
  });

  it('three workers, one killed with -9 in the middle of a part: the shards equal the local export byte for byte', async () => {
    for (let i = 0; i < 3; i++) workers.push(startWorker(server.url, ['--ack-wait', '2']));
    const [victim] = workers;
    const out: string[] = [];
    const run = main([...DATASET, '--out', join(scratch, 'three'), '--runs', join(scratch, 'runs'), '--nats', server.url, '--part-clips', '4', '--ack-wait', '2'], { out: (l) => out.push(l), err: () => {} });
    // Killed once it has finished a part and taken the next: it dies holding that one.
    await victim!.waitFor(/^part \d+ of job[^]*^taking part \d+ of job/m);
    victim!.child.kill('SIGKILL');
    const held = Number([...victim!.output().matchAll(/^taking part (\d+) of job/gm)].at(-1)![1]);
    assert.equal(await run, 0);
    assertSameExport(local, join(scratch, 'three'));
    assert.match(out.join('\n'), /16 shard files in sets clean, raindrops \(114 train, 5 test, 9 val\) in [\d.]+ s, on the workers of nats:/);
    // The part the victim held was redelivered to a survivor after the ack wait.
    const survivors = workers.slice(1).map((w) => w.output()).join('\n');
    assert.match(survivors, new RegExp(`^part ${held} of job \\w+ \\(delivery 2\\): 4 clips`, 'm'), survivors);
    // Every part was announced once to the coordinator, whatever the deliveries: 32 parts of 4.
    const parts = new Set([...(victim!.output() + survivors).matchAll(/^part (\d+) of job/gm)].map((m) => Number(m[1])));
    assert.equal(parts.size, 32);
  });

  it('a coordinator killed with -9 and started again with --resume finishes the job; without --resume it says so', async () => {
    const out = join(scratch, 'resumed');
    const args = [...DATASET, '--out', out, '--runs', join(scratch, 'runs'), '--nats', server.url, '--part-clips', '4', '--ack-wait', '2'];
    const survivors = workers.slice(1);
    const from = survivors.map((w) => w.output().length);
    const coordinator = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    // Killed once the workers have finished three parts of its job (of 32).
    const done = (): number => survivors.reduce((n, w, i) => n + (w.output().slice(from[i]).match(/^part \d+ of job/gm) ?? []).length, 0);
    while (done() < 3) await new Promise((resolve) => setTimeout(resolve, 20));
    coordinator.kill('SIGKILL');
    await new Promise((resolve) => coordinator.once('exit', resolve));
    const refused: string[] = [];
    assert.equal(await main(args, { out: () => {}, err: (l) => refused.push(l) }), 2);
    assert.match(refused.join('\n'), /^st-inpaint: NATS holds \d+ finished parts of this export from an earlier run \(job \w+\); add --resume to continue it$/m);
    const log: string[] = [];
    assert.equal(await main([...args, '--resume'], { out: () => {}, err: (l) => log.push(l) }), 0, log.join('\n'));
    assert.ok(log.some((l) => /^resuming job \w+: \d+ parts already done$/.test(l)), log.join('\n'));
    assertSameExport(local, out);
  });

  it('apply over NATS: one item per video of a folder, the checkpoint and videos through the object store; the fills equal a local apply of the folder frame for frame', async () => {
    const run = await runGraph(demo, { steps: 2, batch: 2, clips: 40, frames: 4, size: 16, base: 2, backend: 'wasm', 'eval-every': 0, 'eval-clips': 1 }, { progress: false, handleSignals: false, log: () => {}, runsDir: join(scratch, 'runs') });
    const input = join(scratch, 'videos');
    mkdirSync(input);
    for (const [name, frames] of [['a.avi', 30], ['b.mkv', 9], ['c.mp4', 20]] as const) {
      execFileSync(ffmpegPath(), ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=size=40x32:rate=24`, '-frames:v', String(frames), '-pix_fmt', name.endsWith('.mp4') ? 'yuv420p' : 'gray', '-c:v', name.endsWith('.mp4') ? 'libx264' : 'ffv1', join(input, name)]);
    }
    const common = ['apply', '--checkpoint', run.runDir, '--input', input, '--occlusion', 'raindrops', '--seed', '3', '--backend', 'wasm'];
    const here: string[] = [];
    assert.equal(await main([...common, '--output', join(scratch, 'filled-local')], { out: (l) => here.push(l), err: () => {} }), 0);
    const remote: string[] = [];
    const err: string[] = [];
    assert.equal(await main([...common, '--output', join(scratch, 'filled-remote'), '--nats', server.url], { out: (l) => remote.push(l), err: (l) => err.push(l) }), 0, err.join('\n'));
    assert.deepEqual(readdirSync(join(scratch, 'filled-remote')).sort(), ['a.mkv', 'b.mkv', 'c.mkv']);
    assert.equal(remote.length, 3);
    assert.match(remote.join('\n'), /b\.mkv: 9 frames of 40×32 in [\d.]+ s on \S+; masked MAE/);
    for (const name of ['a.mkv', 'b.mkv', 'c.mkv']) {
      const [mine, theirs] = [await allFrames(join(scratch, 'filled-local', name)), await allFrames(join(scratch, 'filled-remote', name))];
      assert.equal(theirs.length, mine.length, name);
      mine.forEach((f, i) => assert.ok(Buffer.from(f).equals(Buffer.from(theirs[i]!)), `${name} frame ${i}`));
    }
    // Again: every video is already there and kept; nothing goes to the workers.
    const again: string[] = [];
    assert.equal(await main([...common, '--output', join(scratch, 'filled-remote'), '--nats', server.url], { out: () => {}, err: (l) => again.push(l) }), 0);
    assert.equal(again.filter((l) => /already there, kept$/.test(l)).length, 3);
  });

  it('a dataset without parts of its own is cut by clip positions, and the export still equals the local one', async () => {
    // The local export read back as the "shards" dataset: it has no parts, so workers read it up to their positions.
    const args = ['export', 'shards', '--source', local, '--dataset-option', 'set=raindrops', '--shard-clips', '16', '--runs', join(scratch, 'runs')];
    assert.equal(await main([...args, '--out', join(scratch, 'shards-local')], quiet), 0);
    assert.equal(await main([...args, '--out', join(scratch, 'shards-remote'), '--nats', server.url, '--part-clips', '10'], quiet), 0);
    assertSameExport(join(scratch, 'shards-local'), join(scratch, 'shards-remote'));
  });
});

describe('NATS credentials', { skip: missing }, () => {
  let server: NatsServer;
  before(async () => (server = await startNatsServer({ token: 's3cret' })));
  after(async () => server?.stop());

  it('a worker with the wrong token is refused with one line; the right one works', async () => {
    const wrong = startWorker(server.url, ['--nats-token', 'wrong']);
    assert.equal(await wrong.exited, 2);
    const lines = wrong.output().trim().split('\n');
    assert.equal(lines.length, 1, wrong.output());
    assert.match(lines[0]!, /^st-inpaint: nats:\/\/127\.0\.0\.1:\d+ refused the connection: .*(?:authorization|Authorization).*--nats-token/);
    const none: string[] = [];
    assert.equal(await main(['export', 'synthetic', '--out', join(scratch, 'none'), '--nats', server.url], { out: () => {}, err: (l) => none.push(l) }), 2);
    assert.match(none.join('\n'), /refused the connection/);
    const right = startWorker(server.url, ['--nats-token', 's3cret']);
    try {
      const args = ['export', 'synthetic', '--dataset-option', 'clips=12', '--dataset-option', 'size=16', '--dataset-option', 'frames=4', '--runs', join(scratch, 'runs')];
      assert.equal(await main([...args, '--out', join(scratch, 'token'), '--nats', server.url, '--nats-token', 's3cret', '--part-clips', '5'], quiet), 0);
      assert.equal(await main([...args, '--out', join(scratch, 'token-local')], quiet), 0);
      assertSameExport(join(scratch, 'token-local'), join(scratch, 'token'));
    } finally {
      right.child.kill('SIGKILL');
    }
  });
});

describe('run --distribute', { skip: missing }, () => {
  let server: NatsServer;
  const workers: WorkerProcess[] = [];
  const kth = join(scratch, 'kth');
  before(async () => {
    server = await startNatsServer();
    writeKthFixture(scratch, kth, [
      { action: 'walking', name: 'person11_walking_d1', frames: 40, ranges: [[1, 20], [21, 40]] },
      { action: 'boxing', name: 'person12_boxing_d1', frames: 40, ranges: [[1, 20], [21, 40]] },
      { action: 'boxing', name: 'person22_boxing_d2', frames: 30, ranges: [[5, 25]] },
    ]);
    for (let i = 0; i < 2; i++) workers.push(startWorker(server.url, ['--ack-wait', '5']));
    await Promise.all(workers.map((w) => w.waitFor(/taking work from/)));
  });
  after(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    await server?.stop();
  });

  it('kth-raindrops with its dataset chain on the workers is the same run as a local one, loss for loss', async () => {
    const given = { source: kth, preset: 'cpu', 'dataset-option': 'split-by=person', steps: 4, batch: 2, frames: 4, size: 16, base: 2, 'eval-every': 2, 'eval-clips': 0, threads: 1, backend: 'wasm' };
    const quietRun = { progress: false as const, handleSignals: false, log: () => {} };
    const here = await runGraph(kthRaindrops, given, { ...quietRun, runsDir: join(scratch, 'runs-local') });
    const log: string[] = [];
    const there = await runGraph(kthRaindrops, given, { ...quietRun, log: (l) => log.push(l), runsDir: join(scratch, 'runs-remote'), distribute: { nats: { url: server.url }, stage: 'cut', chunk: 2, window: 2 } });
    const records = (dir: string, type: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r['type'] === type);
    const losses = (dir: string) => records(dir, 'step').map((r) => [r['step'], r['lossG'], r['lossD'], r['position']]);
    assert.equal(losses(there.runDir).length, 4);
    assert.deepEqual(losses(there.runDir), losses(here.runDir));
    assert.deepEqual(records(there.runDir, 'evaluation').map((e) => e['rows']), records(here.runDir, 'evaluation').map((e) => e['rows']));
    // The dataset's chain ran on the workers: the run's stages name it, and the workers streamed its clips.
    assert.ok(there.stats.some((s) => s.stage === 'workers:cut'), there.stats.map((s) => s.stage).join(', '));
    assert.ok(!there.stats.some((s) => s.stage === 'decode'));
    assert.match(workers.map((w) => w.output()).join('\n'), /^part 0 of job \w+-\w+: \d+ clips streamed/m);
  });

  it('KTH is cut into parts of videos: an export of three parts on two workers equals the local export', async () => {
    const args = ['export', 'kth', '--source', kth, '--dataset-option', 'frames=4', '--dataset-option', 'size=16', '--dataset-option', 'split-by=person', '--occlusion', 'raindrops', '--shard-clips', '2', '--runs', join(scratch, 'runs')];
    assert.equal(await main([...args, '--out', join(scratch, 'kth-local')], quiet), 0);
    const err: string[] = [];
    assert.equal(await main([...args, '--out', join(scratch, 'kth-remote'), '--nats', server.url, '--part-clips', '2'], { out: () => {}, err: (l) => err.push(l) }), 0, err.join('\n'));
    assert.ok(err.some((l) => /^job \w+: 3 parts of 2 clips/.test(l)), err.join('\n'));
    assertSameExport(join(scratch, 'kth-local'), join(scratch, 'kth-remote'));
  });

  it('a slow reader holds the workers back: at most window chunks of a part wait in the store, and the clips are the local ones in order', async () => {
    const given = { clips: 160, frames: 4, size: 16 };
    const dataset = findDataset('synthetic');
    const stream = remoteDataset({ dataset, given, onError: 'fail', distribute: { nats: { url: server.url }, stage: 'synthetic', chunk: 4, window: 2 } });
    const connection = await openNats({ url: server.url }, 'test observer');
    const stored: number[] = [];
    const ids: string[] = [];
    try {
      for await (const clip of pull(stream)) {
        ids.push(clip.id);
        if (ids.length % 8 === 0) stored.push((await connection.store.list()).filter((o) => /\/\d+\/\d+$/.test(o.name)).length);
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    } finally {
      await connection.close();
    }
    const local: string[] = [];
    for await (const clip of pull(dataset.open(given).clips)) local.push(clip.id);
    assert.deepEqual(ids, local);
    // Parts of 32 clips, two published at a time, each at most 2 chunks ahead: never more than 4 chunks stored.
    assert.ok(Math.max(...stored) <= 4, `chunks stored: ${stored.join(' ')}`);
    assert.ok(Math.max(...stored) >= 2, 'the workers did run ahead of the reader');
  });

  it('--distribute names the last stage of the dataset chain, and needs --nats', async () => {
    const err: string[] = [];
    assert.equal(await main(['run', 'kth-raindrops', '--source', kth, '--preset', 'cpu', '--steps', '1', '--nats', server.url, '--distribute', 'decode', '--out', join(scratch, 'runs-bad')], { out: () => {}, err: (l) => err.push(l) }), 2);
    assert.match(err.join('\n'), /^st-inpaint: --distribute decode: the workers run dataset "kth"'s whole chain \(kth-zips → zip-entries → decode → cut\), so name its last stage, cut$/m);
    const alone: string[] = [];
    assert.equal(await main(['run', 'kth-raindrops', '--source', kth, '--distribute', 'cut', '--out', join(scratch, 'runs-bad')], { out: () => {}, err: (l) => alone.push(l) }), 2);
    assert.match(alone.join('\n'), /--distribute needs --nats URL/);
  });
});

/**
 * Training speed: one full iteration (a G step and two D steps) of the inpainting GAN at a fixed
 * preset, on the wasm and cpu backends, or on webgpu (`--backend webgpu`: a GPU, or Mesa's
 * llvmpipe where there is none). FLOPs are counted from the shapes of every
 * convolution and matrix product the iteration actually runs (bench/kernel-meter.ts), so the
 * GFLOP/s figure is the arithmetic of the model, not of any particular kernel strategy. The
 * backend's own large-matMul throughput is measured in the same run as the reference.
 *
 *   npm run bench -- train [--json] [--iterations N] [--backends wasm,cpu | --backend webgpu] [--preset demo|small|mid|paper] [--threads 1|2]
 *
 * The presets are those of `../shared/anchors/torch_gan.py`, the same model in PyTorch, so that a
 * figure here and one from PyTorch on the same machine compare like with like. `paper` (C = 32,
 * 3 channels, 35 frames of 64×64, batch 8, the paper's extra block) is GPU work. Every run appends
 * its JSON figures to `bench/results/train.jsonl`.
 *
 * With two threads (the default) the wasm iteration is also timed on the data-parallel trainer
 * (parallel.ts), in max(6, N) rounds that alternate it with the one-thread trainer (best of each,
 * and the median of the rounds' ratios), and the JSON figures are those of two threads.
 *
 * `--against-pytorch` times the same iteration in PyTorch (`../shared/anchors/torch_gan.py`, or the
 * script named by ST_INPAINT_TORCH_ANCHOR, run by a python3 that has torch) on the same threads, in
 * rounds alternating with st-inpaint's wasm iteration, and prints PyTorch's time over ours (the
 * share of PyTorch's speed reached; the target is ≥ 0.7). Skipped, saying why, without PyTorch.
 *
 * The pure-JS cpu backend is far slower; it runs only the `small` preset (one iteration), and
 * `speedupOverCpu` is its time per iteration over wasm's on that same preset, on as many threads
 * as the JSON figures.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { describeSelection, releaseBackend, selectBackend } from '../pipeline/backend.ts';
import { type GanConfig } from '../stages/gan/networks.ts';
import { GanTrainer } from '../stages/gan/trainer.ts';
import { DataParallelTrainer } from '../stages/gan/parallel.ts';
import { chooseOcclusion } from '../stages/occlusion/index.ts';
import { MaskSampler, fillValue } from '../stages/occlusion/process.ts';
import { Random } from '../stages/random.ts';
import { KernelMeter } from './kernel-meter.ts';
import { recordFigures } from './record.ts';

interface Preset {
  readonly config: GanConfig;
  readonly batch: number;
}

/**
 * `demo`: C = 4, 32×32, 8 frames, batch 4, gray. `small`: for the cpu backend. `mid`: C = 8,
 * 64×64, 16 frames, batch 4. `paper`: the paper's model and clip size, batch 8.
 */
const PRESETS: Record<string, Preset> = {
  demo: { config: { base: 4, channels: 1, frames: 8, height: 32, width: 32, extraBlock: false }, batch: 4 },
  small: { config: { base: 2, channels: 1, frames: 4, height: 16, width: 16, extraBlock: false }, batch: 2 },
  mid: { config: { base: 8, channels: 1, frames: 16, height: 64, width: 64, extraBlock: false }, batch: 4 },
  paper: { config: { base: 32, channels: 3, frames: 35, height: 64, width: 64, extraBlock: true }, batch: 8 },
};

async function trainerOptions({ config }: Preset): Promise<ConstructorParameters<typeof GanTrainer>[0]> {
  const { process, options } = chooseOcclusion('raindrops', {});
  const shape = { frames: config.frames, height: config.height, width: config.width };
  const drawer = await process.prepare(options as never, shape);
  return {
    config,
    seed: 1,
    fill: fillValue(process, [-1, 1]),
    timeDependent: process.timeDependent,
    sampler: new MaskSampler(drawer, shape, Random.fromKey(1, 'fresh-masks')),
  };
}

/** One and two threads timed in alternating rounds, so that both meet the same minutes of the machine. */
interface Paired {
  readonly rounds: number;
  readonly oneThread: number;
  readonly twoThreads: number;
  /** Median over the rounds of one thread's time over two threads'. */
  readonly medianRatio: number;
}

/**
 * Alternates an iteration of the one-thread trainer with one of the data-parallel trainer (two
 * threads) on the same batch, `rounds` times, and takes the best of each. The speed of this
 * machine drifts from minute to minute, so two figures timed a minute apart can differ by more
 * than the thread count's effect; alternating makes the ratio compare like with like.
 */
async function pairedThreads(preset: Preset, rounds: number): Promise<Paired> {
  await selectBackend('wasm');
  const one = new GanTrainer(await trainerOptions(preset));
  const two = await DataParallelTrainer.start(await trainerOptions(preset), 'wasm');
  const { y, m } = observedBatch(preset);
  try {
    // The first iterations set kernels up and grow the heaps, the worker's included.
    for (let i = 0; i < 2; i++) {
      await one.trainStep(y, m);
      await two.trainStep(y, m);
    }
    const [t1, t2]: [number[], number[]] = [[], []];
    for (let i = 0; i < rounds; i++) {
      let t0 = performance.now();
      await one.trainStep(y, m);
      t1.push((performance.now() - t0) / 1000);
      t0 = performance.now();
      await two.trainStep(y, m);
      t2.push((performance.now() - t0) / 1000);
    }
    const ratios = t1.map((t, i) => t / t2[i]!).sort((a, b) => a - b);
    const mid = ratios.length >> 1;
    const medianRatio = ratios.length % 2 ? ratios[mid]! : (ratios[mid - 1]! + ratios[mid]!) / 2;
    return { rounds, oneThread: Math.min(...t1), twoThreads: Math.min(...t2), medianRatio };
  } finally {
    tf.dispose([y, m]);
    one.dispose();
    two.dispose();
  }
}

/** A python3 with torch and the anchor script, or why there is none. */
function pytorchAnchor(): { python: string; script: string } | string {
  const script = process.env['ST_INPAINT_TORCH_ANCHOR'] ?? fileURLToPath(new URL('../../shared/anchors/torch_gan.py', import.meta.url));
  if (!existsSync(script)) return `no PyTorch anchor script at ${script} (set ST_INPAINT_TORCH_ANCHOR)`;
  for (const python of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) return { python, script };
  }
  return 'no python3 with torch (Debian: apt-get install python3-torch)';
}

/**
 * st-inpaint's wasm iteration (two data-parallel threads, or one) and PyTorch's, in alternating
 * rounds: each round times `iterations` of ours (best) and runs the anchor for as many (its best).
 */
async function againstPytorch(presetName: string, preset: Preset, threads: number, rounds: number, iterations: number): Promise<{ ours: number[]; theirs: number[]; ratios: number[]; native: string | undefined } | string> {
  const anchor = pytorchAnchor();
  if (typeof anchor === 'string') return anchor;
  const { native } = await selectBackend('wasm');
  const trainer = threads === 2 ? await DataParallelTrainer.start(await trainerOptions(preset), 'wasm') : new GanTrainer(await trainerOptions(preset));
  const { y, m } = observedBatch(preset);
  const ours: number[] = [];
  const theirs: number[] = [];
  try {
    for (let i = 0; i < 2; i++) await trainer.trainStep(y, m);
    for (let r = 0; r < rounds; r++) {
      const times: number[] = [];
      for (let i = 0; i < iterations; i++) {
        const t0 = performance.now();
        await trainer.trainStep(y, m);
        times.push((performance.now() - t0) / 1000);
      }
      ours.push(Math.min(...times));
      const run = spawnSync(anchor.python, [anchor.script, '--preset', presetName, '--threads', String(threads), '--iterations', String(iterations)], { encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`${anchor.script} failed: ${run.stderr.trim().split('\n').at(-1)}`);
      theirs.push((JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { secondsBest: number }).secondsBest);
      console.log(`round ${r + 1}: st-inpaint ${ours.at(-1)!.toFixed(3)} s, PyTorch ${theirs.at(-1)!.toFixed(3)} s per iteration → ${(theirs.at(-1)! / ours.at(-1)!).toFixed(2)} of PyTorch's speed`);
    }
  } finally {
    tf.dispose([y, m]);
    trainer.dispose();
  }
  return { ours, theirs, ratios: ours.map((t, i) => theirs[i]! / t), native };
}

function observedBatch({ config, batch }: Preset): { y: tf.Tensor5D; m: tf.Tensor5D } {
  return tf.tidy(() => {
    const shape: [number, number, number, number, number] = [batch, config.frames, config.height, config.width, config.channels];
    const m = tf.cast(tf.greater(tf.randomUniform([batch, config.frames, config.height, config.width, 1], 0, 1, 'float32', 7), 0.3), 'float32') as tf.Tensor5D;
    const x = tf.randomUniform(shape, -1, 1, 'float32', 8);
    return { y: tf.mul(x, m) as tf.Tensor5D, m };
  });
}

/** The backend's large-matMul throughput, GFLOP/s (best of several 1024³ products). */
async function matmulGflops(): Promise<number> {
  const n = 1024;
  const a = tf.randomUniform([n, n]);
  const b = tf.randomUniform([n, n]);
  const warm = tf.matMul(a, b);
  await warm.data();
  warm.dispose();
  let best = Infinity;
  for (let r = 0; r < 4; r++) {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    await c.data();
    best = Math.min(best, performance.now() - t0);
    c.dispose();
  }
  tf.dispose([a, b]);
  return (2 * n ** 3) / (best / 1000) / 1e9;
}

/**
 * Memory bandwidth, GB/s read + written, copying a 64 MiB buffer back and forth: on one thread,
 * then on two threads started together (mean per thread). Copies that fit the cache, and
 * matMuls, run as fast on two threads at once as on one; these do not (27 – 29 GB/s alone, 16 – 17
 * each at once, measured here), so what two threads lose is the part of the training step that
 * streams from memory. The run's figure tells how much of that the machine gave at the time.
 */
const COPY_SOURCE = `
  const { workerData, parentPort } = require('node:worker_threads');
  const a = new Float32Array(workerData.floats).fill(1), b = new Float32Array(workerData.floats);
  b.set(a);
  // Start together: each arrives, then waits until all have.
  const gate = new Int32Array(workerData.gate);
  Atomics.add(gate, 0, 1);
  while (Atomics.load(gate, 0) < workerData.parties) Atomics.wait(gate, 0, Atomics.load(gate, 0), 10);
  Atomics.notify(gate, 0);
  const t0 = performance.now();
  for (let i = 0; i < workerData.reps; i++) (i & 1 ? a : b).set(i & 1 ? b : a);
  parentPort.postMessage((2 * 4 * workerData.floats * workerData.reps) / ((performance.now() - t0) / 1000) / 1e9);
`;

async function copyBandwidth(): Promise<{ oneThread: number; twoThreads: number }> {
  const run = (parties: number): Promise<number[]> => {
    const gate = new SharedArrayBuffer(4);
    return Promise.all(
      Array.from(
        { length: parties },
        () =>
          new Promise<number>((resolve, reject) => {
            const worker = new Worker(COPY_SOURCE, { eval: true, workerData: { floats: 16 << 20, reps: 100, gate, parties } });
            worker.once('message', (gbps: number) => {
              resolve(gbps);
              void worker.terminate();
            });
            worker.once('error', reject);
          }),
      ),
    );
  };
  const [oneThread] = await run(1);
  const both = await run(2);
  return { oneThread: oneThread!, twoThreads: (both[0]! + both[1]!) / 2 };
}

interface Measured {
  readonly backend: string;
  /** The selection line: backend, adapter, what was skipped. */
  readonly device: string;
  readonly preset: string;
  readonly secondsPerIteration: number;
  readonly gflopPerIteration: number;
  readonly gflops: number;
  readonly matmulGflops: number;
  readonly kernels: Array<{ kernel: string; calls: number; seconds: number; gflop: number; gflopSeconds: number }>;
  /** The heaviest FLOP-charged kernels by input shapes (a layer's forward or gradient pass), inclusive time. */
  readonly passes: Array<{ kernel: string; key: string; calls: number; seconds: number; gflop: number }>;
}

async function measure(backend: string, presetName: string, iterations: number): Promise<Measured> {
  const device = describeSelection(await selectBackend(backend));
  const preset = PRESETS[presetName]!;
  const trainer = new GanTrainer(await trainerOptions(preset));
  const { y, m } = observedBatch(preset);
  try {
    // One warm-up iteration (first calls set up kernels and grow the heap), one metered, then
    // timed ones without the meter.
    await trainer.trainStep(y, m);
    const meter = new KernelMeter(tf.getBackend());
    let flops: number;
    try {
      await trainer.trainStep(y, m);
      flops = meter.totalFlops;
    } finally {
      meter.stop();
    }
    // The heaviest by self time, and every kernel charged with FLOPs however little its self time.
    const heaviest = meter.top(12);
    const kernels = [...heaviest, ...[...meter.stats.values()].filter((s) => s.flops > 0 && !heaviest.includes(s))]
      .map((s) => ({ kernel: s.kernel, calls: s.calls, seconds: s.selfMs / 1000, gflop: s.flops / 1e9, gflopSeconds: s.flopMs / 1000 }));
    const passes = [...meter.byShape.values()]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 12)
      .map((p) => ({ kernel: p.kernel, key: p.key, calls: p.calls, seconds: p.ms / 1000, gflop: p.flops / 1e9 }));
    let best = Infinity;
    for (let i = 0; i < iterations; i++) {
      const t0 = performance.now();
      await trainer.trainStep(y, m);
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    const seconds = iterations > 0 ? best : kernels.reduce((a, k) => a + k.seconds, 0);
    return {
      backend,
      device,
      preset: presetName,
      secondsPerIteration: seconds,
      gflopPerIteration: flops / 1e9,
      gflops: flops / 1e9 / seconds,
      matmulGflops: await matmulGflops(),
      kernels,
      passes,
    };
  } finally {
    tf.dispose([y, m]);
    trainer.dispose();
  }
}

function report(r: Measured): void {
  const c = PRESETS[r.preset]!;
  console.log(`${r.backend}, preset ${r.preset} (C = ${c.config.base}, ${c.config.height}×${c.config.width}, ${c.config.frames} frames, batch ${c.batch}, ${c.config.channels} channel):`);
  console.log(`  ${r.secondsPerIteration.toFixed(2)} s per iteration, ${r.gflopPerIteration.toFixed(1)} GFLOP → ${r.gflops.toFixed(1)} GFLOP/s; large matMul ${r.matmulGflops.toFixed(1)} GFLOP/s; ratio ${(r.gflops / r.matmulGflops).toFixed(2)}`);
  // Self time: a kernel built from others (the convolution gradients on wasm) is charged only its
  // own work, and its inner Conv2D calls go to Conv2D. FLOPs go to the outermost kernel with a
  // formula, and its rate is over those calls' whole time.
  console.log('  heaviest kernels (metered iteration, self time; GFLOP and rate of the calls charged with them, inner kernels included):');
  for (const k of r.kernels) console.log(`    ${k.kernel.padEnd(24)} ${String(k.calls).padStart(5)} calls ${k.seconds.toFixed(2).padStart(7)} s ${k.gflop > 0 ? `${k.gflop.toFixed(2)} GFLOP in ${k.gflopSeconds.toFixed(2)} s, ${(k.gflop / k.gflopSeconds).toFixed(1)} GFLOP/s` : ''}`);
  // The same FLOP-charged calls split by input shapes: which layer's pass runs slow.
  console.log('  heaviest layer passes (metered iteration, inclusive time):');
  for (const p of r.passes) console.log(`    ${(p.seconds * 1000).toFixed(1).padStart(7)} ms ${(p.gflop / p.seconds).toFixed(1).padStart(5)} GFLOP/s  ${p.kernel} ×${p.calls}: ${p.key}`);
}

export async function trainBench(json: boolean, args: readonly string[] = []): Promise<void> {
  const option = (name: string, fallback: string): string => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
  };
  const iterations = Number(option('iterations', '2'));
  const preset = option('preset', 'demo');
  if (!PRESETS[preset]) throw new Error(`--preset must be one of ${Object.keys(PRESETS).join(', ')}, got ${preset}`);
  const backends = option('backend', option('backends', 'wasm,cpu')).split(',');
  if (args.includes('--against-pytorch')) {
    const threads = option('threads', '2') === '2' ? 2 : 1;
    const rounds = Number(option('rounds', '5'));
    const r = await againstPytorch(preset, PRESETS[preset]!, threads, rounds, Math.max(3, iterations));
    if (typeof r === 'string') {
      console.log(`against PyTorch: skipped, ${r}`);
      return;
    }
    const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const figures = {
      bench: 'train-against-pytorch',
      preset,
      threads,
      rounds,
      secondsPerIteration: Number(median(r.ours).toFixed(3)),
      pytorchSecondsPerIteration: Number(median(r.theirs).toFixed(3)),
      shareOfPytorchSpeed: Number(median(r.ratios).toFixed(2)),
      shareOfPytorchSpeedRange: [Number(Math.min(...r.ratios).toFixed(2)), Number(Math.max(...r.ratios).toFixed(2))],
      // The native library st-inpaint's products ran on, or why none (backends/wasm/blas.ts).
      native: r.native ?? null,
    };
    console.log(`${preset} preset, ${threads} thread${threads === 2 ? 's' : ''}: st-inpaint ${figures.secondsPerIteration} s, PyTorch ${figures.pytorchSecondsPerIteration} s per iteration (medians of ${rounds} alternating rounds): st-inpaint runs at ${figures.shareOfPytorchSpeed} of PyTorch's speed (rounds ${figures.shareOfPytorchSpeedRange.join(' – ')}; target ≥ 0.7)`);
    recordFigures('train', figures);
    if (json) console.log(JSON.stringify(figures));
    await releaseBackend();
    return;
  }
  const results: Measured[] = [];
  for (const backend of backends) {
    const r = await measure(backend, backend === 'cpu' ? 'small' : preset, backend === 'cpu' ? 0 : iterations);
    report(r);
    results.push(r);
  }
  const wasm = results.find((r) => r.backend === 'wasm');
  const cpu = results.find((r) => r.backend === 'cpu');
  const threads = wasm && option('threads', '2') === '2' ? 2 : 1;
  // Both cores: the same iteration split over two data-parallel threads, alternated with one thread.
  let paired: Paired | undefined;
  if (wasm && threads === 2) {
    paired = await pairedThreads(PRESETS[preset]!, Math.max(6, iterations));
    const { rounds, oneThread, twoThreads, medianRatio } = paired;
    console.log(
      `two threads (data-parallel), ${rounds} rounds alternating with one thread: ${twoThreads.toFixed(2)} s per iteration against ${oneThread.toFixed(2)} s ` +
        `→ ${(wasm.gflopPerIteration / twoThreads).toFixed(1)} GFLOP/s, ${(oneThread / twoThreads).toFixed(2)}× one thread (median of the rounds ${medianRatio.toFixed(2)}×), ` +
        `ratio to one thread's matMul ${(wasm.gflopPerIteration / twoThreads / wasm.matmulGflops).toFixed(2)}`,
    );
  }
  // The same workload on both: wasm also runs the small preset the cpu backend can afford, on as
  // many threads as the figures below.
  let speedup: number | undefined;
  if (wasm && cpu) {
    // With --preset small, the figures above already are that preset's.
    let small: number;
    if (threads === 2) small = (preset === 'small' ? paired! : await pairedThreads(PRESETS.small!, Math.max(3, iterations))).twoThreads;
    else small = preset === 'small' ? wasm.secondsPerIteration : (await measure('wasm', 'small', iterations)).secondsPerIteration;
    speedup = cpu.secondsPerIteration / small;
    console.log(`small preset: cpu ${cpu.secondsPerIteration.toFixed(2)} s, wasm ${small.toFixed(3)} s per iteration (${threads === 2 ? 'two threads' : 'one thread'}) → wasm ${speedup.toFixed(1)}× faster`);
  }
  const bandwidth = wasm ? await copyBandwidth() : undefined;
  if (bandwidth) console.log(`memory bandwidth (64 MiB copies): ${bandwidth.oneThread.toFixed(1)} GB/s on one thread, ${bandwidth.twoThreads.toFixed(1)} GB/s per thread on two at once`);
  const main = wasm ?? results[0]!;
  const seconds = paired?.twoThreads ?? main.secondsPerIteration;
  const oneThread = paired?.oneThread ?? main.secondsPerIteration;
  const gflops = main.gflopPerIteration / seconds;
  const figures = {
    bench: 'train',
    backend: main.backend,
    device: main.device,
    preset: main.preset,
    secondsPerIteration: Number(seconds.toFixed(3)),
    gflopPerIteration: Number(main.gflopPerIteration.toFixed(2)),
    gflops: Number(gflops.toFixed(2)),
    matmulGflops: Number(main.matmulGflops.toFixed(2)),
    ratioToMatmul: Number((gflops / main.matmulGflops).toFixed(3)),
    speedupOverCpu: speedup === undefined ? null : Number(speedup.toFixed(1)),
    threads: paired ? 2 : 1,
    oneThreadSecondsPerIteration: Number(oneThread.toFixed(3)),
    twoThreadSpeedup: paired ? Number((oneThread / seconds).toFixed(2)) : null,
    twoThreadSpeedupMedian: paired ? Number(paired.medianRatio.toFixed(2)) : null,
    copyGBps: bandwidth ? Number(bandwidth.oneThread.toFixed(1)) : null,
    copyGBpsTwoThreads: bandwidth ? Number(bandwidth.twoThreads.toFixed(1)) : null,
  };
  recordFigures('train', figures);
  if (json) console.log(JSON.stringify(figures));
  await releaseBackend();
}

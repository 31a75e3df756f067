/**
 * The WebGPU backend against the reference backends: every op of training, forward and gradient,
 * on random shapes (rank 5 included, where the backend's shaders need the wrappers of
 * limits.ts); a training step against wasm; checkpoints shared with wasm; a flat tensor count; a
 * device lost mid-run; and the adapter choice. On a machine without a GPU these run on Dawn's
 * OpenGL ES route over Mesa's llvmpipe (`.ci/run` installs Mesa's EGL); where Dawn finds no
 * adapter at all they are skipped with the reason.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { lastValueFrom, tap, toArray } from 'rxjs';
import { releaseBackend, selectBackend } from '../../pipeline/backend.ts';
import { assertClose } from '../fixtures/kernels.ts';
import { latestCheckpoint, latestIntactCheckpoint, loadCheckpoint, type CheckpointContent } from '../../pipeline/checkpoint.ts';
import { encodeFrameBatch, type Clip, type FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { chooseAdapter, probeAdapters, webgpuDevice } from '../../backends/webgpu/index.ts';
import { mergeBroadcastAxes, mergePadAxes, mergeSliceAxes } from '../../backends/webgpu/limits.ts';
import { reducedPermutation } from '../../backends/shape.ts';
import { shiftStack } from '../../stages/gan/shift-stack.ts';
import { Random } from '../../stages/random.ts';
import { BatchNorm, FrameAttention, ParamStore, ResBlock, SNConv } from '../../stages/gan/layers.ts';
import { GanTrainer, type StepRecord, type TrainerState } from '../../stages/gan/trainer.ts';
import type { GanConfig } from '../../stages/gan/networks.ts';
import { trainGan, type Trainer } from '../../stages/gan/train.ts';
import { MaskSampler, fillValue } from '../../stages/occlusion/process.ts';
import { chooseOcclusion } from '../../stages/occlusion/index.ts';
import { settleTeardowns } from '../../pipeline/teardown.ts';
import { ffmpegPath } from '../../stages/io/video.ts';

const probe = await probeAdapters().catch((err: Error) => [{ route: 'vulkan' as const, reason: err.message }]);
const usable = probe.find((r) => 'adapter' in r);
const skip = usable ? false : `no WebGPU adapter here (${probe.map((r) => ('reason' in r ? `${r.route}: ${r.reason}` : '')).join('; ')})`;
// CI has Mesa's llvmpipe: there a missing adapter is a failure, not a reason to skip.
if (skip && process.env['ST_INPAINT_REQUIRE_WEBGPU'] === '1') throw new Error(`ST_INPAINT_REQUIRE_WEBGPU=1 but ${skip}`);

after(async () => {
  await releaseBackend();
});

/** Values of `f()` on `backend`, computed from plain arrays (tensors do not move between these backends). */
async function on(backend: string, f: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  if (tf.getBackend() !== backend) await selectBackend(backend);
  const out = tf.tidy(f);
  const list = Array.isArray(out) ? out : [out];
  const values = await Promise.all(list.map(async (t) => Float32Array.from((await t.data()) as Float32Array)));
  tf.dispose(list);
  return values;
}

function randomArray(r: Random, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => r.uniform(-1, 1));
}

function randomShape(r: Random, rank: number, most = 5): number[] {
  return Array.from({ length: rank }, () => r.int(1, most));
}

test('merged axes: the shapes the wrappers hand to rank-4 shaders', () => {
  // Clips times per-pixel masks: [B,T,H,W,C]·[B,T,H,W,1] is [BTHW, C]·[BTHW, 1].
  assert.deepEqual(mergeBroadcastAxes([2, 3, 4, 5, 6], [[2, 3, 4, 5, 6], [2, 3, 4, 5, 1]]), { out: [120, 6], inputs: [[120, 6], [120, 1]] });
  // A scalar-like operand, and size-1 axes dropped.
  assert.deepEqual(mergeBroadcastAxes([2, 1, 4, 5, 6], [[2, 1, 4, 5, 6], [1]]), { out: [240], inputs: [[240], [1]] });
  assert.deepEqual(mergeSliceAxes([4, 3, 5, 6, 2], [2, 0, 0, 0, 0], [2, 3, 5, 6, 2]), { shape: [720], begin: [360], size: [360] });
  assert.deepEqual(mergeSliceAxes([4, 3, 5, 6, 2], [0, 1, 0, 0, 0], [4, 2, 5, 6, 2]), { shape: [4, 180], begin: [0, 60], size: [4, 120] });
  // [0, 1, 2, 3, 4] → [0, 3, 4, 1, 2]: axes (1 2) and (3 4) move as blocks.
  assert.deepEqual(reducedPermutation([2, 3, 4, 5, 6], [0, 3, 4, 1, 2]), { dims: [2, 12, 30], perm: [0, 2, 1] });
  assert.deepEqual(mergePadAxes([2, 3, 4, 5, 6], [[0, 0], [1, 1], [0, 0], [0, 0], [0, 0]]), { shape: [2, 360], paddings: [[0, 0], [120, 120]] });
});

test('the adapter choice: auto never takes a software adapter; --backend webgpu does, and names it', { skip }, async () => {
  const software = probe.every((r) => !('adapter' in r) || r.adapter.software);
  if (software) {
    await assert.rejects(chooseAdapter(false), (err: Error) => /no hardware WebGPU adapter \(.*vulkan: .*software adapter/.test(err.message));
    const auto = await selectBackend('auto');
    assert.notEqual(auto.backend, 'webgpu');
    assert.match(auto.skipped.find((s) => s.backend === 'webgpu')?.reason ?? '', /no hardware WebGPU adapter/);
  }
  if (software) {
    // No adapter at all (EGL refused, and no Vulkan GPU here): one line naming each route and its fix, exit code 2.
    const dir = mkdtempSync(join(tmpdir(), 'webgpu-none-'));
    const bin = fileURLToPath(new URL('../../bin/st-inpaint.js', import.meta.url));
    const none = spawnSync('node', [bin, 'run', 'demo', '--backend', 'webgpu', '--steps', '1', '--out', dir], { encoding: 'utf8', env: { ...process.env, EGL_PLATFORM: 'none-such' }, timeout: 120_000 });
    rmSync(dir, { recursive: true, force: true });
    assert.equal(none.status, 2, none.stderr);
    assert.match(none.stderr.trim(), /^st-inpaint: --backend webgpu: no backend loaded \(webgpu: no WebGPU adapter \(vulkan: .+; opengles: EGL could not initialise .*apt-get install .*\)\)\)$/);
  }
  const chosen = await selectBackend('webgpu');
  assert.equal(tf.getBackend(), 'webgpu');
  assert.match(chosen.adapter ?? '', / via (vulkan|opengles)/);
});

test('the kernels the wrappers widen (rank-5 elementwise, select, slice, concat, transpose, pad; AddN of 40) match cpu', { skip }, async () => {
  const r = Random.fromKey('webgpu-limits');
  const cases: Array<[string, () => tf.Tensor]> = [];
  for (let k = 0; k < 4; k++) {
    const shape = randomShape(r, 5);
    const broadcast = shape.map((d) => (r.uniform() < 0.4 ? 1 : d));
    const [a, b, c] = [randomArray(r, tf.util.sizeFromShape(shape)), randomArray(r, tf.util.sizeFromShape(broadcast)), randomArray(r, tf.util.sizeFromShape(shape))];
    const axis = r.int(0, 4);
    const begin = shape.map((d) => r.int(0, d - 1));
    const size = shape.map((d, i) => r.int(1, d - begin[i]!));
    const perm5 = [0, 1, 2, 3, 4].map((a) => [r.uniform(), a] as const).sort((p, q) => p[0] - q[0]).map(([, a]) => a);
    const paddings = shape.map(() => (r.uniform() < 0.5 ? [0, 0] : [r.int(0, 2), r.int(0, 2)])) as Array<[number, number]>;
    const x = () => tf.tensor(a, shape);
    const y = () => tf.tensor(b, broadcast);
    cases.push(
      [`add ${shape}+${broadcast}`, () => tf.add(x(), y())],
      [`mul ${shape}·${broadcast}`, () => tf.mul(y(), x())],
      [`sub, div, maximum ${shape}`, () => tf.maximum(tf.div(tf.sub(x(), y()), tf.add(tf.abs(y()), 1)), -0.5)],
      [`greaterEqual ${shape}`, () => tf.cast(tf.greaterEqual(x(), y()), 'float32')],
      [`where ${shape}`, () => tf.where(tf.greater(x(), 0), x(), tf.tensor(c, shape))],
      [`slice ${shape} at ${begin} size ${size}`, () => tf.slice(x(), begin, size)],
      [`concat ${shape} on ${axis}`, () => tf.concat([x(), tf.tensor(c, shape), x()], axis)],
      [`transpose ${shape} by ${perm5}`, () => tf.transpose(x(), perm5)],
      [`pad ${shape} by ${JSON.stringify(paddings)}`, () => tf.pad(x(), paddings, 0.25)],
      [`sum over ${axis} of ${shape}`, () => tf.sum(tf.square(x()), axis)],
    );
  }
  const terms = Array.from({ length: 40 }, () => randomArray(r, 12));
  cases.push(['addN of 40', () => tf.addN(terms.map((t) => tf.tensor(t, [3, 4])))]);
  const reference = await on('cpu', () => cases.map(([, f]) => f()));
  const actual = await on('webgpu', () => cases.map(([, f]) => f()));
  cases.forEach(([what], i) => assertClose(actual[i]!, reference[i]!, 1e-5, what));
});

test('every layer of the networks, forward and gradient, matches cpu on random shapes', { skip }, async () => {
  const r = Random.fromKey('webgpu-layers');
  // Each case builds its layer from the same seed on each backend (a ParamStore draws weights by
  // seed) and returns the forward values, the input's gradient and every weight's gradient.
  const cases: Array<[string, () => tf.Tensor[]]> = [];
  const grads = (store: ParamStore, input: tf.Tensor, f: (x: tf.Tensor) => tf.Tensor): tf.Tensor[] => {
    const vars = [...store.trainable.values()];
    // A fixed weighting of every output: a loss whose gradient has no symmetry to cancel (Σ BN(x)²
    // is constant) and no large terms that cancel in float32 (as squares of deep outputs give).
    const loss = (z: tf.Tensor): tf.Scalar => {
      const y = f(z);
      return tf.sum(tf.mul(y, tf.reshape(tf.sin(tf.range(0, y.size)), y.shape)));
    };
    const { value, grads: g } = tf.variableGrads(() => loss(input), vars);
    const dx = tf.grad(loss)(input);
    const out = [f(input), value, dx, ...vars.map((v) => g[v.name]!)];
    store.dispose();
    return out;
  };
  for (let k = 0; k < 2; k++) {
    const [b, t, h, w, c] = [r.int(1, 2), r.int(2, 4), 2 * r.int(2, 3), 2 * r.int(2, 3), r.int(1, 3)];
    const out = r.int(1, 4);
    const seed = r.int(0, 999);
    const values = randomArray(r, b * t * h * w * 8);
    const clip = (channels: number) => tf.tensor5d(values.subarray(0, b * t * h * w * channels), [b, t, h, w, channels]);
    const shape = `[${b}, ${t}, ${h}, ${w}, ${c}]`;
    for (const stride of [1, 2]) {
      cases.push([`spectrally normalised 3D conv ${shape} → ${out}, stride ${stride}`, () => {
        const store = new ParamStore(`conv3-${k}-${stride}`, seed);
        const conv = new SNConv(store, 'conv', { dims: 3, inChannels: c, outChannels: out, kernel: 3, stride, bias: true });
        conv.powerIterate();
        return grads(store, clip(c), (z) => conv.apply(z as tf.Tensor5D));
      }]);
    }
    cases.push(
      [`spectrally normalised 2D conv, 4×4 stride 2, ${shape} frames`, () => {
        const store = new ParamStore(`conv2-${k}`, seed);
        const conv = new SNConv(store, 'conv', { dims: 2, inChannels: c, outChannels: out, kernel: 4, stride: 2, bias: true });
        conv.powerIterate();
        return grads(store, tf.reshape(clip(c), [b * t, h, w, c]), (z) => conv.apply(z as tf.Tensor4D));
      }],
      [`batch norm with its custom gradient, ${shape}`, () => {
        const store = new ParamStore(`bn-${k}`, seed);
        const bn = new BatchNorm(store, 'bn', c);
        const inference = bn.apply(clip(c), { training: false });
        return [inference, ...grads(store, clip(c), (z) => bn.apply(z as tf.Tensor5D, { training: true, updateStatistics: false }))];
      }],
      [`residual block ${shape} → ${out}`, () => {
        const store = new ParamStore(`res-${k}`, seed);
        const block = new ResBlock(store, 'block', c, out);
        return grads(store, clip(c), (z) => block.apply(z as tf.Tensor5D, { training: true, updateStatistics: false }));
      }],
      [`frame self-attention [${b}, ${t}, ${h}, ${w}, 8]`, () => {
        const store = new ParamStore(`attention-${k}`, seed);
        const attention = new FrameAttention(store, 'attention', 8);
        return grads(store, clip(8), (z) => attention.apply(z as tf.Tensor5D));
      }],
      [`shift stack [${b}, ${t}, ${h * w}, ${c}], 3 taps`, () => {
        const input = tf.tensor4d(values.subarray(0, b * t * h * w * c), [b, t, h * w, c]);
        return [shiftStack(input, 3), tf.grad((z: tf.Tensor) => tf.sum(tf.square(shiftStack(z as tf.Tensor4D, 3))))(input)];
      }],
    );
  }
  const run = async (backend: string): Promise<Float32Array[][]> => {
    const results: Float32Array[][] = [];
    for (const [, f] of cases) results.push(await on(backend, f));
    return results;
  };
  const reference = await run('cpu');
  const actual = await run('webgpu');
  cases.forEach(([what], i) => {
    assert.equal(actual[i]!.length, reference[i]!.length, what);
    // A gradient that is zero in exact arithmetic (γ of a batch norm whose output is normalised
    // again) is rounding noise on both: it is compared on the scale of the case's other outputs.
    const caseScale = Math.max(...reference[i]!.map((ref) => ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
    reference[i]!.forEach((ref, j) => assertClose(actual[i]![j]!, ref, 2e-4, `${what}, output ${j}`, 1e-2 * caseScale));
  });
});

const TINY: GanConfig = { base: 2, channels: 1, frames: 4, height: 16, width: 16, extraBlock: false };
const LEARNING_RATE = 1e-3;

async function tinyTrainer(): Promise<GanTrainer> {
  const { process, options } = chooseOcclusion('raindrops', {});
  const drawer = await process.prepare(options as never, TINY);
  return new GanTrainer({ config: TINY, seed: 4, fill: fillValue(process, [-1, 1]), timeDependent: process.timeDependent, sampler: new MaskSampler(drawer, TINY, Random.fromKey(4, 'fresh-masks')), learningRate: LEARNING_RATE, selfSupervisedWeight: 10 });
}

/** Observed clips number k (uint8 pixels, raindrop masks), the same on every backend. */
async function tinyClips(k: number, count = 2): Promise<Clip[]> {
  const { process, options } = chooseOcclusion('raindrops', {});
  const drawer = await process.prepare(options as never, TINY);
  return Array.from({ length: count }, (_, i) => {
    const r = Random.fromKey('webgpu-clips', k, i);
    return { id: `clip-${k}-${i}`, frames: Uint8Array.from({ length: TINY.frames * TINY.height * TINY.width }, () => r.int(0, 255)), mask: drawer.draw(Random.fromKey('webgpu-masks', k, i)) };
  });
}

const SPEC: FrameBatchSpec = { shape: { frames: TINY.frames, height: TINY.height, width: TINY.width, channels: 1 }, pixelType: 'uint8', range: [0, 255] };

/** Clips as the trainer takes them: y in [−1, 1] [B, T, H, W, 1], masks [B, T, H, W, 1]. */
function tensorsOf(clips: readonly Clip[]): { y: tf.Tensor5D; m: tf.Tensor5D } {
  const shape: [number, number, number, number, number] = [clips.length, TINY.frames, TINY.height, TINY.width, 1];
  const y = Float32Array.from(clips.flatMap((c) => Array.from(c.frames as Uint8Array, (v) => (v / 255) * 2 - 1)));
  const m = Float32Array.from(clips.flatMap((c) => Array.from(c.mask!)));
  return { y: tf.tensor5d(y, shape), m: tf.tensor5d(m, shape) };
}

/** One step from the seed on `backend`: its record, the trainer's snapshot, and its fill of the step's clips. */
async function firstStep(backend: string): Promise<{ lossG: number; lossD: number; lossSelf: number; arrays: Map<string, Float32Array>; filled: Float32Array }> {
  await selectBackend(backend);
  const trainer = await tinyTrainer();
  const { y, m } = tensorsOf(await tinyClips(0));
  try {
    const record = await trainer.trainStep(y, m);
    const snapshot = await trainer.snapshot();
    const filled = trainer.inpaint(y, m);
    const values = Float32Array.from((await filled.data()) as Float32Array);
    filled.dispose();
    return { ...record, arrays: new Map([...snapshot.arrays].map(([k, a]) => [k, Float32Array.from(a.values)])), filled: values };
  } finally {
    tf.dispose([y, m]);
    trainer.dispose();
  }
}

test('a training step on webgpu agrees with wasm (one thread): losses within 1e-3, gradients, weights and fills', { skip }, async () => {
  const wasm = await firstStep('wasm');
  const gpu = await firstStep('webgpu');
  for (const key of ['lossG', 'lossD', 'lossSelf'] as const) assert.ok(Math.abs(gpu[key] - wasm[key]) <= 1e-3, `${key}: webgpu ${gpu[key]}, wasm ${wasm[key]}`);
  assert.deepEqual([...gpu.arrays.keys()].sort(), [...wasm.arrays.keys()].sort());
  // Gradients that are 0 in exact arithmetic (γ of a batch norm normalised again downstream) are
  // rounding noise on both backends: they are compared on the scale of all of G's gradients.
  const gradientScale = Math.max(...[...wasm.arrays].filter(([name]) => name.startsWith('adam-g/m/')).map(([, a]) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
  for (const [name, reference] of wasm.arrays) {
    const actual = gpu.arrays.get(name)!;
    if (name.startsWith('adam-g/m/')) {
      // β₁ = 0: G's first moment is its gradient at the initial weights.
      assertClose(actual, reference, 1e-3, name, 1e-3 * gradientScale);
    } else if (/^(generator|sequence|frame)/.test(name) && !/\.(u|v)$|running/.test(name)) {
      // Each Adam step moves a weight by about ±lr, whatever the gradient's size: a gradient
      // within rounding of 0 may take the other sign on the other backend. G takes one step,
      // the discriminators two.
      const most = (name.startsWith('generator') ? 2.5 : 4.5) * LEARNING_RATE;
      for (let i = 0; i < actual.length; i++) assert.ok(Math.abs(actual[i]! - reference[i]!) <= most, `${name}[${i}]: webgpu ${actual[i]}, wasm ${reference[i]}`);
    }
  }
  assertClose(gpu.filled, wasm.filled, 2e-2, 'fill after one step');
});

test('checkpoints move between webgpu and wasm: a wasm checkpoint continues on webgpu as on wasm, and back', { skip }, async () => {
  const clips = tensorsOfOn;
  // One step on wasm, checkpointed.
  await selectBackend('wasm');
  const first = await tinyTrainer();
  let batch = tensorsOf(await tinyClips(0));
  await first.trainStep(batch.y, batch.m);
  tf.dispose([batch.y, batch.m]);
  const checkpoint = await first.snapshot();
  batch = tensorsOf(await tinyClips(1));
  const onWasm = await first.trainStep(batch.y, batch.m);
  tf.dispose([batch.y, batch.m]);
  first.dispose();
  // The same checkpoint's next step on webgpu, then its own checkpoint back on wasm.
  await selectBackend('webgpu');
  const moved = await tinyTrainer();
  moved.restore(checkpoint);
  batch = tensorsOf(await tinyClips(1));
  const onGpu = await moved.trainStep(batch.y, batch.m);
  tf.dispose([batch.y, batch.m]);
  assert.equal(onGpu.step, 2);
  for (const key of ['lossG', 'lossD'] as const) assert.ok(Math.abs(onGpu[key] - onWasm[key]) <= 1e-3 * Math.max(1, Math.abs(onWasm[key])), `${key} at step 2: webgpu ${onGpu[key]}, wasm ${onWasm[key]}`);
  const back = await moved.snapshot();
  const gpuFill = await clips(moved, 2);
  moved.dispose();
  await selectBackend('wasm');
  const returned = await tinyTrainer();
  returned.restore(back);
  assert.equal(returned.step, 2);
  assertClose(await clips(returned, 2), gpuFill, 1e-4, 'fill by the webgpu checkpoint on wasm');
  returned.dispose();
});

/** The trainer's fill of clips number k, as plain values. */
async function tensorsOfOn(trainer: GanTrainer, k: number): Promise<Float32Array> {
  const { y, m } = tensorsOf(await tinyClips(k));
  const filled = trainer.inpaint(y, m);
  const values = Float32Array.from((await filled.data()) as Float32Array);
  tf.dispose([y, m, filled]);
  return values;
}

test('a device lost mid-run stops training with a clear error, keeps the last checkpoint, and --resume continues from it; no tensors leak meanwhile', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'webgpu-lost-'));
  try {
    const batches = (from: number, to: number) =>
      source('tiny-batches', async function* () {
        for (let k = from; k < to; k++) yield encodeFrameBatch(SPEC, await tinyClips(k));
      });
    await selectBackend('webgpu');
    const counts: number[] = [];
    const records: number[] = [];
    const run = lastValueFrom(
      batches(0, 6).pipe(
        trainGan({ createTrainer: tinyTrainer, checkpoints: { dir, every: 1, keep: 3 } }),
        unwrap(),
        tap((r) => {
          records.push(r.step);
          counts.push(tf.memory().numTensors);
          // Lost after the third step, while the fourth is under way.
          if (r.step === 3) webgpuDevice()!.destroy();
        }),
        toArray(),
      ),
    );
    await assert.rejects(run, (err: Error) => err.message.includes('GPU device was lost') && /last checkpoint is kept/.test(err.message));
    await settleTeardowns();
    assert.deepEqual(records, [1, 2, 3]);
    // Flat after the first step (the trainer's variables are made then).
    assert.equal(counts[2], counts[1], `live tensors by step: ${counts.join(', ')}`);
    const latest = latestCheckpoint(dir);
    assert.equal(latest?.step, 3);
    const saved = loadCheckpoint<TrainerState>(latest!.path);
    for (const [name, a] of saved.arrays) assert.ok(a.values.every(Number.isFinite), `${name} is finite`);

    // A fresh device, as a new process would have; the run resumes at step 4.
    await selectBackend('webgpu');
    const resumed = await lastValueFrom(batches(3, 5).pipe(trainGan({ createTrainer: tinyTrainer, checkpoints: { dir, every: 1, keep: 3, resumeFrom: { ...latestIntactCheckpoint(dir)!, position: 0 } } }), unwrap(), toArray()));
    assert.deepEqual(resumed.map((r) => r.step), [4, 5]);
    await settleTeardowns();
    assert.equal(latestCheckpoint(dir)?.step, 5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * The smallest real trainer: a per-pixel gain fitted to the visible pixels by gradient descent,
 * on the device. It stands in for the GAN where what is under test is the stage's data path.
 */
class GainTrainer implements Trainer {
  step = 0;
  position = 0;
  healthy = true;
  readonly gain = tf.variable(tf.ones([TINY.height, TINY.width, 1]));
  /** Per step: whether both inputs were on the device before the step began. */
  readonly resident: boolean[] = [];

  constructor(private readonly log: string[]) {}

  async trainStep(y: tf.Tensor5D, m: tf.Tensor5D): Promise<StepRecord> {
    const tensors = (tf.backend() as unknown as { tensorMap: { get(id: tf.DataId): { resource?: unknown } } }).tensorMap;
    this.resident.push([y, m].every((t) => tensors.get(t.dataId).resource != null));
    this.log.push(`start ${this.step + 1}`);
    const started = performance.now();
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.mul(tf.square(tf.sub(tf.mul(y, this.gain), tf.mul(y, 0.5))), m)) as tf.Scalar, [this.gain]);
      this.gain.assign(tf.sub(this.gain, tf.mul(grads[this.gain.name]!, 300)));
      return value;
    });
    const [lossG] = (await loss.data()) as Float32Array;
    loss.dispose();
    this.step += 1;
    this.position += y.shape[0];
    this.log.push(`end ${this.step}`);
    const stepMs = performance.now() - started;
    return { step: this.step, lossG: lossG!, lossD: 0, lossSelf: 0, dsReal: 0, dsFake: 0, dfReal: 0, dfFake: 0, gradNormG: 0, gradNormD: 0, learningRate: 300, stepMs, clipsPerSecond: 0, position: this.position };
  }

  inpaint(y: tf.Tensor5D): tf.Tensor5D {
    return tf.mul(y, this.gain);
  }

  async snapshot(): Promise<CheckpointContent<TrainerState>> {
    return { step: this.step, state: { position: this.position } as unknown as TrainerState, arrays: new Map([['gain', { shape: this.gain.shape, values: (await this.gain.data()) as Float32Array }]]) };
  }

  restore(): void {
    throw new Error('not used');
  }

  dispose(): void {
    this.gain.dispose();
  }
}

test('the data path to the device: 200 batches, each uploaded while the step before it runs, in flat device memory, with the wait measured', { skip }, async () => {
  await selectBackend('webgpu');
  const dir = mkdtempSync(join(tmpdir(), 'webgpu-path-'));
  const log: string[] = [];
  const clips = await tinyClips(0, 4);
  let trainer: GainTrainer | undefined;
  const memory: Array<{ tensors: number; bytes: number; gpuBytes: number }> = [];
  try {
    const records = await lastValueFrom(
      source('batches', function* () {
        for (let k = 0; k < 200; k++) {
          log.push(`batch ${k + 1}`);
          yield encodeFrameBatch(SPEC, clips);
        }
      }).pipe(
        trainGan({ createTrainer: () => (trainer = new GainTrainer(log)), checkpoints: { dir, every: 0, keep: 3 } }),
        unwrap(),
        tap(() => memory.push({ tensors: tf.memory().numTensors, bytes: tf.memory().numBytes, gpuBytes: (tf.memory() as { numBytesInGPU?: number }).numBytesInGPU ?? 0 })),
        toArray(),
      ),
    );
    await settleTeardowns();
    assert.equal(records.length, 200);
    assert.ok(records.every((r) => Number.isFinite(r.waitMs) && r.waitMs >= 0));
    // The model learns (the gain goes to 0.5): the steps ran on real data.
    assert.ok(records[199]!.lossG < records[0]!.lossG / 10, `loss ${records[0]!.lossG} → ${records[199]!.lossG}`);
    // Every batch after the first reached the device before its step, and arrived while the step before it ran.
    assert.deepEqual(trainer!.resident.slice(1), new Array(199).fill(true));
    for (let k = 2; k <= 200; k++) assert.ok(log.indexOf(`batch ${k}`) < log.indexOf(`end ${k - 1}`), `batch ${k} arrived after step ${k - 1} ended`);
    // Flat after warm-up: the same live tensors and bytes (the next batch's included) after step
    // 10 as after step 199; after the last step only the trainer's own remain.
    assert.deepEqual(memory[198], memory[9], `device memory at steps 10 and 199: ${JSON.stringify([memory[9], memory[198]])}`);
    assert.ok(memory[199]!.tensors < memory[198]!.tensors);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the command line on webgpu: run demo, --resume on wasm from its checkpoint, apply with it on webgpu', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'webgpu-cli-'));
  const bin = fileURLToPath(new URL('../../bin/st-inpaint.js', import.meta.url));
  const cli = (args: string[]) => spawnSync('node', [bin, ...args], { encoding: 'utf8', timeout: 600_000 });
  const small = ['--batch', '2', '--clips', '40', '--frames', '4', '--size', '16', '--eval-clips', '2', '--eval-every', '0', '--checkpoint-every', '1', '--out', dir];
  try {
    const first = cli(['run', 'demo', '--backend', 'webgpu', '--steps', '2', ...small]);
    assert.equal(first.status, 0, first.stderr);
    // The run's first line names the adapter and why the other routes were not taken.
    assert.match(first.stderr.split('\n').find((l) => l.startsWith('backend ')) ?? '', /^backend webgpu on .+ via (vulkan|opengles).*1 training thread/);
    const resumed = cli(['run', 'demo', '--resume', '--backend', 'wasm', '--threads', '1', '--steps', '3', '--out', dir]);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resumed from .*step-2 \(step 2, 4 clips seen\)/);
    const runDir = join(dir, 'demo', readdirSync(join(dir, 'demo'))[0]!);
    const steps = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; step?: number }).filter((r) => r.type === 'step').map((r) => r.step);
    assert.deepEqual(steps, [1, 2, 3]);
    const input = join(dir, 'in.mkv');
    execFileSync(ffmpegPath(), ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=24x20:rate=24', '-frames:v', '6', '-pix_fmt', 'gray', '-c:v', 'ffv1', input]);
    const applied = cli(['apply', '--checkpoint', join(runDir, 'checkpoints', 'step-3'), '--input', input, '--occlusion', 'raindrops', '--output', join(dir, 'out.mkv'), '--backend', 'webgpu']);
    assert.equal(applied.status, 0, applied.stderr);
    assert.match(applied.stdout, /out\.mkv: 6 frames of 24×20 .* masked MAE/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

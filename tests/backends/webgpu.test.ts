/**
 * The WebGPU backend against the reference backends: every op of training, forward and gradient,
 * on random shapes (rank 5 included, where the backend's shaders need the wrappers of
 * limits.ts); a training step against wasm; checkpoints shared with wasm; a flat tensor count; a
 * device lost mid-run; and the adapter choice. On a machine without a GPU these run on Dawn's
 * OpenGL ES route over Mesa's llvmpipe (`.ci/run` installs Mesa's EGL); where Dawn finds no
 * adapter at all they are skipped with the reason.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { lastValueFrom, toArray } from 'rxjs';
import { DeviceLostError, releaseBackend, selectBackend } from '../../pipeline/backend.ts';
import { latestCheckpoint, loadCheckpoint } from '../../pipeline/checkpoint.ts';
import { encodeFrameBatch, type Clip, type FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { source } from '../../pipeline/operators/source.ts';
import { chooseAdapter, probeAdapters, webgpuDevice } from '../../backends/webgpu/index.ts';
import { mergeBroadcastAxes, mergePadAxes, mergeSliceAxes, mergeTransposeAxes } from '../../backends/webgpu/limits.ts';
import { shiftStack } from '../../pipeline/kernels/shift-stack.ts';
import { Random } from '../../stages/random.ts';
import { BatchNorm, FrameAttention, ParamStore, ResBlock3d, SNConv } from '../../stages/gan/layers.ts';
import { GanTrainer, type TrainerState } from '../../stages/gan/trainer.ts';
import type { GanConfig } from '../../stages/gan/networks.ts';
import { trainGan } from '../../stages/gan/train.ts';
import { MaskSampler, fillValue } from '../../stages/occlusion/process.ts';
import { chooseOcclusion } from '../../stages/occlusion/index.ts';
import { settleTeardowns } from '../../pipeline/teardown.ts';

const probe = await probeAdapters().catch((err: Error) => [{ route: 'vulkan' as const, reason: err.message }]);
const usable = probe.find((r) => 'adapter' in r);
const skip = usable ? false : `no WebGPU adapter here (${probe.map((r) => ('reason' in r ? `${r.route}: ${r.reason}` : '')).join('; ')})`;

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

/** Relative difference measured against the larger magnitude of the reference. */
function assertClose(actual: Float32Array, expected: Float32Array, tol: number, what: string, floor = 1e-12): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = floor;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) / Math.max(scale, 1e-12);
    if (err > tol || Number.isNaN(actual[i])) assert.fail(`${what}: element ${i} is ${actual[i]}, reference ${expected[i]} (relative ${err.toExponential(2)})`);
  }
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
  assert.deepEqual(mergeTransposeAxes([2, 3, 4, 5, 6], [0, 3, 4, 1, 2]), { shape: [2, 12, 30], perm: [0, 2, 1] });
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
        const block = new ResBlock3d(store, 'block', c, out);
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

/**
 * Backend selection, and the kernels supplied to wasm: their results against the cpu backend's own
 * kernels (the reference), within 1e-4 relative, on random shapes, strides and paddings.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, describeSelection } from '../../pipeline/backend.ts';
import { Random } from '../../stages/random.ts';

test('an unknown backend is a usage error naming it', async () => {
  await assert.rejects(selectBackend('tpu'), (err: Error) => err.name === 'UsageError' && /--backend must be one of .*"tpu"/.test(err.message));
});

test('auto takes the first backend that loads and says why the others did not', async () => {
  const s = await selectBackend('auto');
  // This machine has no TensorFlow binding installed (optional dependencies that need internet).
  const order = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];
  assert.ok(order.includes(s.backend));
  assert.deepEqual(s.skipped.map((k) => k.backend), order.slice(0, order.indexOf(s.backend)));
  for (const k of s.skipped) assert.ok(k.reason.length > 0);
  assert.equal(tf.getBackend(), s.tfName);
  assert.match(describeSelection(s), new RegExp(`^backend ${s.backend}`));
});

/** Relative difference measured against the larger magnitude of the reference. */
function assertClose(actual: Float32Array, expected: Float32Array, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) / Math.max(scale, 1e-12);
    if (err > tol) assert.fail(`${what}: element ${i} is ${actual[i]}, reference ${expected[i]} (relative ${err.toExponential(2)})`);
  }
}

test('wasm Conv2DBackpropFilter (supplied) equals the cpu kernel on random shapes, strides and paddings', async () => {
  const random = Random.fromKey('conv2d-backprop-filter');
  const cases: Array<{ x: number[]; k: number[]; stride: number; pad: 'same' | 'valid' | number }> = [];
  for (let n = 0; n < 12; n++) {
    const pad = (['same', 'valid', 1] as const)[random.int(0, 2)]!;
    const kh = random.int(1, 3);
    // tfjs sizes the output of a numeric padding from the filter height alone, so its forward
    // convolution differs between backends for non-square filters: numeric padding gets square ones.
    const kw = typeof pad === 'number' ? kh : random.int(1, 3);
    const h = random.int(kh, 11);
    const w = random.int(kw, 11);
    cases.push({ x: [random.int(1, 3), h, w, random.int(1, 5)], k: [kh, kw], stride: random.int(1, 2), pad });
  }
  for (const c of cases) {
    const xs = Float32Array.from({ length: c.x.reduce((a, b) => a * b) }, () => random.uniform(-1, 1));
    const co = 1 + (xs.length % 4);
    const ws = Float32Array.from({ length: c.k[0]! * c.k[1]! * c.x[3]! * co }, () => random.uniform(-1, 1));
    const gradOn = async (backend: string): Promise<Float32Array> => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const x = tf.tensor4d(xs, c.x as [number, number, number, number]);
        const w = tf.tensor4d(ws, [c.k[0]!, c.k[1]!, c.x[3]!, co]);
        // A non-uniform upstream gradient: the loss weights every output differently.
        const dw = tf.grad((wt: tf.Tensor) => tf.sum(tf.square(tf.conv2d(x, wt as tf.Tensor4D, c.stride, c.pad as 'same'))))(w);
        return dw.dataSync() as Float32Array;
      });
    };
    await selectBackend('cpu');
    const reference = await gradOn('cpu');
    await selectBackend('wasm');
    assert.equal(tf.getKernel('Conv2DBackpropFilter', 'wasm') !== undefined, true);
    const actual = await gradOn('wasm');
    assertClose(actual, reference, 1e-4, `x ${c.x.join('×')}, kernel ${c.k.join('×')}, stride ${c.stride}, pad ${c.pad}`);
  }
});

test('the supplied kernel leaks no tensors', async () => {
  await selectBackend('wasm');
  const x = tf.randomNormal([2, 7, 5, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 2) as tf.Tensor4D;
  const step = (): void => tf.tidy(() => void tf.grad((wt: tf.Tensor) => tf.sum(tf.conv2d(x, wt as tf.Tensor4D, 2, 'same')))(w).dataSync());
  step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) step();
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, w]);
});

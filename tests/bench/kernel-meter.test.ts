/**
 * The kernel meter behind `bench train`'s figures: FLOPs from layer shapes (checked against the
 * textbook count of a convolution), charged once to the outermost kernel with a formula (the wasm
 * convolution gradients are built from Conv2D calls, which must not be counted again), with the
 * inclusive time of those calls as their rate's denominator.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../pipeline/backend.ts';
import { KernelMeter, kernelFlops } from '../../bench/kernel-meter.ts';

test('kernelFlops: a convolution and its gradients count 2·out·kh·kw·ci, a product 2·M·N·K', () => {
  // x [2, 9, 7, 3], filter [3, 3, 3, 5], stride 1 'same': out [2, 9, 7, 5] = 630 values, 27 taps·channels.
  const conv = 2 * 630 * 3 * 3 * 3;
  assert.equal(kernelFlops('Conv2D', { x: [2, 9, 7, 3], filter: [3, 3, 3, 5] }, {}, [2, 9, 7, 5]), conv);
  assert.equal(kernelFlops('Conv2DBackpropInput', { dy: [2, 9, 7, 5], filter: [3, 3, 3, 5] }, {}, [2, 9, 7, 3]), conv);
  assert.equal(kernelFlops('Conv2DBackpropFilter', { x: [2, 9, 7, 3], dy: [2, 9, 7, 5] }, { filterShape: [3, 3, 3, 5] }, [3, 3, 3, 5]), conv);
  // [4, 6, 10]ᵀ-stored A (transposeA: K = 6) times B: out [4, 10, 8].
  assert.equal(kernelFlops('BatchMatMul', { a: [4, 6, 10], b: [4, 6, 8] }, { transposeA: true }, [4, 10, 8]), 2 * 4 * 10 * 8 * 6);
  assert.equal(kernelFlops('Relu', { x: [4] }, {}, [4]), undefined);
});

test('the meter charges the gradients built from Conv2D once, to the outer kernel, with its inclusive time', async () => {
  await selectBackend('wasm');
  const x = tf.randomNormal([2, 9, 7, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, 3, 5], 0, 1, 'float32', 2) as tf.Tensor4D;
  const meter = new KernelMeter('wasm');
  try {
    tf.tidy(() => {
      const [dx, dw] = tf.grads((xt: tf.Tensor, wt: tf.Tensor) => tf.sum(tf.conv2d(xt as tf.Tensor4D, wt as tf.Tensor4D, 1, 'same')))([x, w]);
      dx!.dataSync();
      dw!.dataSync();
    });
  } finally {
    meter.stop();
  }
  const conv = 2 * 630 * 27;
  const stats = (name: string) => meter.stats.get(name)!;
  // The forward Conv2D alone is charged to Conv2D, although the gradients call Conv2D inside.
  assert.equal(stats('Conv2D').flops, conv);
  assert.ok(stats('Conv2D').calls > 1, 'the gradients run Conv2D inside');
  assert.equal(stats('Conv2DBackpropInput').flops, conv);
  assert.equal(stats('Conv2DBackpropFilter').flops, conv);
  assert.equal(meter.totalFlops, 3 * conv);
  // A gradient's rate is over its whole time, inner convolutions included; its self time excludes them.
  for (const name of ['Conv2DBackpropInput', 'Conv2DBackpropFilter']) {
    assert.ok(stats(name).flopMs > 0 && stats(name).flopMs >= stats(name).selfMs, `${name}: inclusive ${stats(name).flopMs} ms, self ${stats(name).selfMs} ms`);
  }
  // Split by input shapes: one pass of each kernel here, keyed by its shapes, adding up to the totals.
  const passes = [...meter.byShape.values()];
  assert.deepEqual(passes.map((p) => p.kernel).sort(), ['Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput']);
  for (const p of passes) {
    assert.equal(p.calls, 1, p.key);
    assert.equal(p.flops, conv, p.key);
    assert.ok(Math.abs(p.ms - stats(p.kernel).flopMs) < 1e-9, `${p.kernel}: ${p.ms} ms by shape, ${stats(p.kernel).flopMs} in all`);
  }
  assert.match(passes.find((p) => p.kernel === 'Conv2D')!.key, /^x \[2, 9, 7, 3\], filter \[3, 3, 3, 5\], stride 1, pad same$/);
  assert.match(passes.find((p) => p.kernel === 'Conv2DBackpropFilter')!.key, /x \[2, 9, 7, 3\], dy \[2, 9, 7, 5\], filter \[3, 3, 3, 5\]/);
  // Stopped: the backend's own kernels are back, so nothing more is counted.
  const before = stats('Conv2D').calls;
  tf.tidy(() => tf.conv2d(x, w, 1, 'same').dataSync());
  assert.equal(stats('Conv2D').calls, before);
  tf.dispose([x, w]);
});

/**
 * Backend selection, and the kernels supplied to wasm: their results against the cpu backend's own
 * kernels (the reference), within 1e-4 relative, on random shapes, strides and paddings. They run
 * on the native library where one loads (blas.ts), and again with it off (backend-xnnpack.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, describeSelection } from '../../pipeline/backend.ts';
import { Random } from '../../stages/random.ts';
import { shiftStack } from '../../stages/gan/shift-stack.ts';
import { conv2dFilterGradByShifts } from '../../backends/wasm/conv-filter-grad.ts';
import { conv2dInputGradByPhases } from '../../backends/wasm/conv-input-grad.ts';
import { checkWasmVersion } from '../../backends/wasm/index.ts';
import { assertClose, liveBackendBuffers, uniform } from '../fixtures/kernels.ts';

test('an unknown backend is a usage error naming it', async () => {
  await assert.rejects(selectBackend('tpu'), (err: Error) => err.name === 'UsageError' && /--backend must be one of .*"tpu"/.test(err.message));
});

test('auto takes the first backend that loads and says why the others did not', async () => {
  const s = await selectBackend('auto');
  // This machine has no TensorFlow binding installed (optional dependencies that need internet).
  const order = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'];
  assert.ok(order.includes(s.backend));
  assert.deepEqual(s.skipped.map((k) => k.backend), order.slice(0, order.indexOf(s.backend)));
  for (const k of s.skipped) assert.ok(k.reason.length > 0);
  assert.equal(tf.getBackend(), s.tfName);
  assert.match(describeSelection(s), new RegExp(`^backend ${s.backend}`));
});

/** Runs `f` on the cpu backend (the reference) and on wasm with its fast kernels; compares. */
async function sameOnBoth(what: string, f: () => tf.Tensor, tol = 1e-4): Promise<void> {
  const on = async (backend: string): Promise<Float32Array> => {
    await selectBackend(backend);
    const before = liveBackendBuffers();
    const values = tf.tidy(() => Float32Array.from(f().dataSync() as Float32Array));
    assert.equal(liveBackendBuffers(), before, `${what}: ${backend} backend buffers left behind`);
    return values;
  };
  const reference = await on('cpu');
  const actual = await on('wasm');
  assertClose(actual, reference, tol, what);
}

/**
 * A loss weighting every output by a fixed random number, so that the upstream gradient is that
 * weight and does not depend on the forward values: the wasm backend's own forward Conv2D
 * differs from the cpu one for some 'same' paddings with strides > 1 and non-square or even
 * filters (measured; the model uses neither), which is not what these tests are about.
 */
function weighted(y: tf.Tensor): tf.Scalar {
  return tf.sum(tf.mul(y, tf.randomUniform(y.shape, -1, 1, 'float32', 17)));
}

/** Random convolution cases: odd and even sizes, strides 1 to 3, every padding mode. */
function convCases(key: string, count: number): Array<{ x: [number, number, number, number]; k: [number, number]; co: number; stride: number; pad: 'same' | 'valid' | number }> {
  const random = Random.fromKey(key);
  return Array.from({ length: count }, () => {
    const pad = (['same', 'valid', 1, 2] as const)[random.int(0, 3)]!;
    const kh = random.int(1, 4);
    // tfjs sizes the output of a numeric padding from the filter height alone, so its forward
    // convolution differs between backends for non-square filters: numeric padding gets square ones.
    const kw = typeof pad === 'number' ? kh : random.int(1, 4);
    const h = random.int(kh, 12);
    const w = random.int(kw, 12);
    return { x: [random.int(1, 3), h, w, random.int(1, 6)], k: [kh, kw], co: random.int(1, 5), stride: random.int(1, 3), pad };
  });
}

test('wasm Conv2DBackpropFilter (supplied) equals the cpu kernel on random shapes, strides and paddings', async () => {
  const random = Random.fromKey('conv2d-backprop-filter-data');
  for (const c of convCases('conv2d-backprop-filter', 16)) {
    const xs = uniform(random, c.x.reduce((a, b) => a * b));
    const ws = uniform(random, c.k[0] * c.k[1] * c.x[3] * c.co);
    await sameOnBoth(`dW: x ${c.x.join('×')}, kernel ${c.k.join('×')}→${c.co}, stride ${c.stride}, pad ${c.pad}`, () => {
      const x = tf.tensor4d(xs, c.x);
      const w = tf.tensor4d(ws, [c.k[0], c.k[1], c.x[3], c.co]);
      return tf.grad((wt: tf.Tensor) => weighted(tf.conv2d(x, wt as tf.Tensor4D, c.stride, c.pad as 'same')))(w);
    });
  }
});

test('wasm filter gradient by flat shifts (stride 1) equals the cpu kernel: 1×1, even and non-square filters, uneven paddings', async () => {
  const random = Random.fromKey('conv2d-filter-shifts');
  for (let k = 0; k < 12; k++) {
    const [kh, kw] = [random.int(1, 4), random.int(1, 4)];
    // Paddings from none ('valid') to a full 'same' and uneven on either side; images large enough for the route.
    const top = random.int(0, kh - 1);
    const bottom = random.int(0, kh - 1 - top);
    const left = random.int(0, kw - 1);
    const right = random.int(0, kw - 1 - left);
    const xShape: [number, number, number, number] = [random.int(1, 5), random.int(28, 34), random.int(28, 34), random.int(1, 7)];
    const co = random.int(1, 5);
    const pad: tf.backend_util.ExplicitPadding = [[0, 0], [top, bottom], [left, right], [0, 0]];
    const xs = uniform(random, xShape.reduce((a, b) => a * b));
    const [oh, ow] = [xShape[1] + top + bottom - kh + 1, xShape[2] + left + right - kw + 1];
    const dys = uniform(random, xShape[0] * oh * ow * co);
    const what = `dW: x ${xShape.join('×')}, kernel ${kh}×${kw}→${co}, pad ${top},${bottom},${left},${right}`;
    await selectBackend('cpu');
    const reference = tf.tidy(() => {
      const x = tf.tensor4d(xs, xShape);
      const dy = tf.tensor4d(dys, [xShape[0], oh, ow, co]);
      // d/dW of Σ conv(x, W) ⊙ dy is the filter gradient for upstream gradient dy.
      return Float32Array.from(tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, w as tf.Tensor4D, 1, pad), dy)))(tf.zeros([kh, kw, xShape[3], co])).dataSync() as Float32Array);
    });
    await selectBackend('wasm');
    // The whole batch in one grid, one image per group, and groups of two with a smaller last one.
    const perImage = xShape[3] * (xShape[1] + Math.max(top, bottom)) * (xShape[2] + Math.max(left, right));
    // Also with the taps' slices copied, as on a backend that cannot make heap views.
    const backend = tf.backend() as unknown as { getMemoryOffset?: unknown };
    for (const [groupFloats, views] of [[undefined, true], [1, true], [2 * perImage, true], [2 * perImage, false]] as const) {
      // An own property hides the class's method for this call; deleting it brings the method back.
      if (!views) backend.getMemoryOffset = undefined;
      // The route's grids, slices and products are the backend's own buffers, not engine tensors.
      const buffersBefore = liveBackendBuffers();
      try {
        const actual = tf.tidy(() => {
          const dW = conv2dFilterGradByShifts(tf.tensor4d(xs, xShape), tf.tensor4d(dys, [xShape[0], oh, ow, co]), [kh, kw], top, left, groupFloats);
          assert.ok(dW, `${what}: the route applies`);
          assert.deepEqual(dW.shape, [kh, kw, xShape[3], co]);
          return Float32Array.from(dW.dataSync() as Float32Array);
        });
        assertClose(actual, reference, 1e-4, `${what}, groups of ${groupFloats ?? 'default'} values, ${views ? 'views' : 'copies'}`);
        assert.equal(liveBackendBuffers(), buffersBefore, `${what}: backend buffers left behind`);
      } finally {
        if (!views) delete backend.getMemoryOffset;
      }
    }
  }
});

test('wasm Conv2DBackpropInput (by stride phases) equals the cpu kernel on random shapes, strides and paddings', async () => {
  const random = Random.fromKey('conv2d-backprop-input-data');
  for (const c of convCases('conv2d-backprop-input', 20)) {
    const xs = uniform(random, c.x.reduce((a, b) => a * b));
    const ws = uniform(random, c.k[0] * c.k[1] * c.x[3] * c.co);
    await sameOnBoth(`dx: x ${c.x.join('×')}, kernel ${c.k.join('×')}→${c.co}, stride ${c.stride}, pad ${c.pad}`, () => {
      const x = tf.tensor4d(xs, c.x);
      const w = tf.tensor4d(ws, [c.k[0], c.k[1], c.x[3], c.co]);
      return tf.grad((xt: tf.Tensor) => weighted(tf.conv2d(xt as tf.Tensor4D, w, c.stride, c.pad as 'same')))(x);
    });
  }
});

test('dx by stride phases, wide channels (copied by runs) and on a backend without a heap (composed of ops), equals the cpu kernel', async () => {
  const random = Random.fromKey('conv2d-input-phases');
  const cases = [
    { x: [2, 9, 8, 17], k: [3, 3], co: 4, stride: 2, pad: 1 },
    { x: [1, 7, 11, 16], k: [3, 2], co: 3, stride: 3, pad: 'same' },
    { x: [2, 10, 10, 3], k: [4, 4], co: 5, stride: 2, pad: 'valid' },
    { x: [1, 5, 6, 20], k: [1, 1], co: 2, stride: 2, pad: 'valid' },
    { x: [1, 6, 6, 18], k: [3, 3], co: 2, stride: 1, pad: 2 },
  ] as const;
  for (const c of cases) {
    const xShape = [...c.x] as [number, number, number, number];
    const wShape: [number, number, number, number] = [c.k[0], c.k[1], c.x[3], c.co];
    const ws = uniform(random, wShape.reduce((a, b) => a * b));
    const attrs = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC' as const };
    const outShape = tf.backend_util.computeConv2DInfo(xShape, wShape, c.stride, 1, c.pad as 'same').outShape;
    const dys = uniform(random, outShape.reduce((a, b) => a * b));
    const what = `dx: x ${c.x.join('×')}, kernel ${c.k.join('×')}→${c.co}, stride ${c.stride}, pad ${c.pad}`;
    await selectBackend('cpu');
    const reference = tf.tidy(() => tf.conv2dTranspose(tf.tensor4d(dys, outShape), tf.tensor4d(ws, wShape), xShape, c.stride, c.pad as 'same').dataSync() as Float32Array);
    for (const backend of ['cpu', 'wasm']) {
      await selectBackend(backend);
      const before = liveBackendBuffers();
      const dx = tf.tidy(() => Float32Array.from(conv2dInputGradByPhases(tf.tensor4d(dys, outShape), tf.tensor4d(ws, wShape), xShape, attrs).dataSync() as Float32Array));
      assert.equal(liveBackendBuffers(), before, `${what}: ${backend} backend buffers left behind`);
      assertClose(dx, reference, 1e-4, `${what} on ${backend}`);
    }
  }
});

test('wasm BatchMatMul with transposed operands, Transpose, Sum, Mean and Identity equal the cpu kernels', async () => {
  const random = Random.fromKey('fast-wasm-kernels');
  for (let n = 0; n < 8; n++) {
    const [b, m, k, p] = [random.int(1, 3), random.int(1, 40), random.int(1, 40), random.int(1, 40)];
    const [ta, tb] = [random.int(0, 1) === 1, random.int(0, 1) === 1];
    const as = uniform(random, b * m * k);
    const bs = uniform(random, b * k * p);
    await sameOnBoth(`matMul [${b},${m},${k}]·[${b},${k},${p}] transposeA ${ta} transposeB ${tb}`, () => {
      const a = tf.tensor3d(as, ta ? [b, k, m] : [b, m, k]);
      const bb = tf.tensor3d(bs, tb ? [b, p, k] : [b, k, p]);
      return tf.matMul(a, bb, ta, tb);
    });
  }
  // Batched products (one product per entry on wasm), with a shared operand on either side, a
  // rank-4 batch, the thin attention shapes (transposeA by transposing A), and a wide right
  // operand (transposeA through Cᵀ = BᵀA, which packs the smaller A).
  const batchedCases: Array<[number[], number[]]> = [
    [[1, 7, 5], [4, 5, 3]],
    [[4, 7, 5], [5, 3]],
    [[4, 7, 5], [1, 5, 3]],
    [[2, 3, 6, 4], [2, 3, 4, 5]],
    [[3, 64, 2], [3, 2, 16]],
    [[3, 16, 64], [3, 64, 2]],
    [[2, 3, 4], [2, 4, 50]],
  ];
  for (const [sa, sb] of batchedCases) {
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const shapeA = ta ? [...sa.slice(0, -2), sa[sa.length - 1]!, sa[sa.length - 2]!] : sa;
      const shapeB = tb ? [...sb.slice(0, -2), sb[sb.length - 1]!, sb[sb.length - 2]!] : sb;
      const as = uniform(random, shapeA.reduce((x, v) => x * v, 1));
      const bs = uniform(random, shapeB.reduce((x, v) => x * v, 1));
      await sameOnBoth(`matMul [${shapeA}]·[${shapeB}] transposeA ${ta} transposeB ${tb}`, () => tf.matMul(tf.tensor(as, shapeA), tf.tensor(bs, shapeB), ta, tb));
    }
  }
  for (let n = 0; n < 10; n++) {
    const rank = random.int(2, 5);
    const shape = Array.from({ length: rank }, () => random.int(1, 9));
    const perm = shape.map((_, i) => i);
    for (let i = rank - 1; i > 0; i--) {
      const j = random.int(0, i);
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    const xs = uniform(random, shape.reduce((a, v) => a * v));
    await sameOnBoth(`transpose [${shape}] by [${perm}]`, () => tf.transpose(tf.tensor(xs, shape), perm), 0);
    const axes = shape.map((_, i) => i).filter(() => random.int(0, 1) === 1);
    const keepDims = random.int(0, 1) === 1;
    if (axes.length > 0) {
      await sameOnBoth(`sum [${shape}] over [${axes}] keepDims ${keepDims}`, () => tf.sum(tf.tensor(xs, shape), axes, keepDims));
      await sameOnBoth(`mean [${shape}] over [${axes}] keepDims ${keepDims}`, () => tf.mean(tf.tensor(xs, shape), axes, keepDims));
    }
    const leading = shape.map((_, i) => i).slice(0, random.int(1, rank - 1));
    await sameOnBoth(`mean [${shape}] over leading [${leading}]`, () => tf.mean(tf.tensor(xs, shape), leading));
  }
  // The permutations training uses, each of the JS paths, size-1 axes included.
  for (const [shape, perm] of [[[37, 29], [1, 0]], [[3, 17, 19], [0, 2, 1]], [[4, 6, 5, 3], [3, 1, 2, 0]], [[3, 5, 4, 20], [3, 1, 2, 0]], [[4, 6, 5, 3], [1, 2, 0, 3]], [[3, 4, 5, 40], [1, 2, 0, 3]], [[5, 1, 7, 1, 9], [4, 1, 2, 3, 0]]] as const) {
    const xs = uniform(random, shape.reduce((a: number, v: number) => a * v, 1));
    await sameOnBoth(`transpose [${shape}] by [${perm}]`, () => tf.transpose(tf.tensor(xs, [...shape]), [...perm]), 0);
  }
  // Identity shares data: the clone must survive its source.
  await selectBackend('wasm');
  const source = tf.tensor([1, 2, 3]);
  const copy = tf.clone(source);
  source.dispose();
  assert.deepEqual(Array.from(copy.dataSync()), [1, 2, 3]);
  copy.dispose();
});

/** Product shapes (a, b) over one six-value tensor reshaped: 6×1, 1×6, 2×3, 3×2, 6×1 again. */
const RESHAPED: Array<[number[], number[]]> = [[[3, 6], [6, 1]], [[5, 1], [1, 6]], [[2, 2], [2, 3]], [[4, 3], [3, 2]], [[3, 6], [6, 1]]];

test('wasm products by one tensor reshaped four ways each use that shape (the backend caches packings by tensor alone)', async () => {
  await sameOnBoth('ones · six values as 6×1, 1×6, 2×3, 3×2, 6×1 again', () => {
    // One tensor, whose data is the right operand of every product under another shape.
    const u = tf.tensor1d([1, 2, 3, 4, 5, 6]);
    return tf.concat(RESHAPED.map(([a, b]) => tf.reshape(tf.matMul(tf.ones(a), tf.reshape(u, b)), [-1])));
  }, 0);
});

test('wasm fused products by one tensor reshaped several ways each use that shape, with and without bias and activation', async () => {
  await sameOnBoth('fused ones · six values as 6×1, 1×6, 2×3, 3×2, 6×1 again; then plain and fused mixed', () => {
    const u = tf.tensor1d([1, -2, 3, -4, 5, -6]);
    const fused = RESHAPED.map(([a, b], i) =>
      tf.fused.matMul({ a: tf.ones(a), b: tf.reshape(u, b), bias: i % 2 ? tf.fill([b[1]!], 0.5) : undefined, activation: i % 3 ? 'relu' : 'linear' }),
    );
    // The same data as a plain product's right operand under one shape, then a fused one's under another.
    const mixed = [tf.matMul(tf.ones([2, 3]), tf.reshape(u, [3, 2])), tf.fused.matMul({ a: tf.ones([1, 2]), b: tf.reshape(u, [2, 3]), activation: 'relu' })];
    return tf.concat([...fused, ...mixed].map((t) => tf.reshape(t, [-1])));
  }, 0);
});

test('wasm ShiftStack and its gradient (one heap pass each) equal the composition of pad, slice and concat on cpu', async () => {
  const random = Random.fromKey('shift-stack');
  // Shorter sequences than taps, one channel, one feature, and the demo's layer shapes.
  const cases: Array<[number[], number]> = [[[2, 5, 7, 3], 3], [[1, 2, 4, 1], 5], [[3, 1, 1, 2], 3], [[2, 8, 16, 4], 3], [[1, 6, 9, 5], 5], [[2, 4, 3, 6], 1], [[2, 4, 6, 20], 3], [[1, 3, 5, 16], 5]];
  for (let n = 0; n < 6; n++) cases.push([[random.int(1, 3), random.int(1, 9), random.int(1, 20), random.int(1, 7)], 2 * random.int(0, 3) + 1]);
  for (const [shape, taps] of cases) {
    const xs = uniform(random, shape.reduce((a, v) => a * v, 1));
    await sameOnBoth(`shiftStack [${shape}] taps ${taps}`, () => shiftStack(tf.tensor4d(xs, shape as [number, number, number, number]), taps), 0);
    await sameOnBoth(`d shiftStack [${shape}] taps ${taps}`, () => tf.grad((x: tf.Tensor) => weighted(shiftStack(x as tf.Tensor4D, taps)))(tf.tensor4d(xs, shape as [number, number, number, number])), 1e-6);
  }
  assert.throws(() => shiftStack(tf.zeros([1, 2, 3, 4]) as tf.Tensor4D, 2), /taps must be a positive odd integer, got 2/);
});

test('the supplied kernels leak no tensors', async () => {
  await selectBackend('wasm');
  const x = tf.randomNormal([2, 7, 5, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 2) as tf.Tensor4D;
  const step = (): void =>
    tf.tidy(() => {
      // Stride 1 on a 14 × 15 image takes the flat-shift filter gradient (views of the heap).
      tf.grad((wt: tf.Tensor) => tf.sum(tf.conv2d(tf.tile(x, [1, 2, 3, 1]) as tf.Tensor4D, wt as tf.Tensor4D, 1, 'same')))(w).dataSync();
      for (const stride of [1, 2]) {
        const [dx, dw] = tf.grads((xt: tf.Tensor, wt: tf.Tensor) => tf.mean(tf.matMul(tf.reshape(tf.conv2d(xt as tf.Tensor4D, wt as tf.Tensor4D, stride, "same"), [2, -1]), tf.ones([2, 4]), true, false)))([x, w]);
        dx!.dataSync();
        dw!.dataSync();
      }
      // Batched products (per-entry copies on the heap) and the shift stack with its gradient.
      const [da, db] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.matMul(a, b, false, true)))([tf.reshape(x, [2, 35, 3]), tf.reshape(x, [2, 35, 3])]);
      da!.dataSync();
      db!.dataSync();
      tf.grad((t: tf.Tensor) => tf.sum(shiftStack(t as tf.Tensor4D, 3)))(x).dataSync();
    });
  step();
  const before = { tensors: tf.memory().numTensors, buffers: tf.backend().numDataIds() };
  for (let i = 0; i < 5; i++) step();
  assert.equal(tf.memory().numTensors, before.tensors);
  // Buffers the kernels make on the heap themselves (no tensor of their own) are counted by the backend only.
  assert.equal(tf.backend().numDataIds(), before.buffers);
  tf.dispose([x, w]);
});

test('the supplied wasm kernels refuse a tfjs-backend-wasm release they were not written for, naming both', () => {
  assert.doesNotThrow(() => checkWasmVersion('4.22.0'));
  assert.throws(() => checkWasmVersion('4.23.1'), /written for @tensorflow\/tfjs-backend-wasm 4\.22\.x, and 4\.23\.1 is installed/);
  assert.throws(() => checkWasmVersion('4.2.0'), /4\.2\.0 is installed/);
});

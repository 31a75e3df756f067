/**
 * The native library route of the wasm backend (backends/wasm/blas.ts, conv-blas.ts and the
 * products in matmul.ts): finding the library, and every route's results against the cpu
 * backend's kernels on random shapes, paddings and groupings.
 *
 * Without a threaded OpenBLAS these tests skip, saying why, unless ST_INPAINT_REQUIRE_BLAS=1 (CI
 * installs libopenblas0-pthread and sets it), where they fail instead.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { describeSelection, selectBackend } from '../../pipeline/backend.ts';
import { Random } from '../../stages/random.ts';
import { type Blas, findBlas, lookupBlas } from '../../backends/wasm/blas.ts';
import { conv2dByTaps, conv2dFilterGradByTaps } from '../../backends/wasm/conv-blas.ts';
import { gemmProduct } from '../../backends/wasm/matmul.ts';
import type { HeapBackend } from '../../backends/wasm/kernel-util.ts';
import { assertClose, liveBackendBuffers, uniform } from '../fixtures/kernels.ts';

const found = findBlas();
const required = process.env['ST_INPAINT_REQUIRE_BLAS'] === '1';
const skip = found.blas || required ? false : `no native library: ${found.reason}`;

test('the library is found, and described where the backend is', { skip }, async () => {
  assert.ok(found.blas, `ST_INPAINT_REQUIRE_BLAS=1 and no library: ${found.reason}`);
  assert.match(found.blas.description, /OpenBLAS/);
  assert.doesNotMatch(found.blas.description, /SINGLE_THREADED/);
  const selection = await selectBackend('wasm');
  assert.match(describeSelection(selection), /products and stride-1 convolutions on OpenBLAS/);
});

test('ST_INPAINT_BLAS=off turns the route off; a library that does not load is an error naming it', () => {
  assert.match(lookupBlas('off').reason ?? '', /turned off/);
  assert.throws(() => lookupBlas('/nowhere/libnothing.so'), /ST_INPAINT_BLAS=\/nowhere\/libnothing\.so: /);
  assert.match(lookupBlas(undefined, ['/nowhere/libnothing.so']).reason ?? '', /no OpenBLAS found/);
});

const serial = `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/openblas-serial/libopenblas.so.0`;
test('a single-threaded OpenBLAS is passed over (two trainer threads call it at once)', { skip: existsSync(serial) ? false : `no ${serial} (libopenblas0-serial)` }, () => {
  const lookup = lookupBlas(undefined, [serial]);
  assert.equal(lookup.blas, undefined);
  assert.match(lookup.reason ?? '', /single-threaded OpenBLAS .*libopenblas0-pthread/);
});

/** The library and the wasm backend, active. */
async function wasmWithBlas(): Promise<{ blas: Blas; backend: HeapBackend }> {
  assert.ok(found.blas, found.reason);
  await selectBackend('wasm');
  return { blas: found.blas, backend: tf.backend() as HeapBackend };
}

/** `f` on the cpu backend, as a plain array. */
async function onCpu(f: () => tf.Tensor): Promise<Float32Array> {
  await selectBackend('cpu');
  return tf.tidy(() => Float32Array.from(f().dataSync() as Float32Array));
}

/** A TensorInfo made by a route, read and freed. */
function readAndFree(backend: HeapBackend, info: tf.TensorInfo): Float32Array {
  const values = Float32Array.from(backend.typedArrayFromHeap(info) as Float32Array);
  backend.disposeData(info.dataId);
  return values;
}

/** Random stride-1 cases: 1×1 to 4×4 filters, square or not, paddings from none to kernel − 1 on a side, uneven. */
function cases(key: string, count: number): Array<{ x: [number, number, number, number]; k: [number, number]; co: number; pad: { top: number; bottom: number; left: number; right: number } }> {
  const random = Random.fromKey(key);
  return Array.from({ length: count }, () => {
    const [kh, kw] = [random.int(1, 4), random.int(1, 4)];
    const pad = { top: random.int(0, kh - 1), bottom: random.int(0, kh - 1), left: random.int(0, kw - 1), right: random.int(0, kw - 1) };
    return { x: [random.int(1, 5), random.int(kh, 11), random.int(kw, 11), random.int(1, 9)], k: [kh, kw], co: random.int(1, 9), pad };
  });
}

test('convolutions by taps equal the cpu kernel, whole batch, image by image and in groups of two', { skip }, async () => {
  const random = Random.fromKey('blas-conv-data');
  for (const c of cases('blas-conv', 14)) {
    const xs = uniform(random, c.x.reduce((a, b) => a * b));
    const ws = uniform(random, c.k[0] * c.k[1] * c.x[3] * c.co);
    const explicit: tf.backend_util.ExplicitPadding = [[0, 0], [c.pad.top, c.pad.bottom], [c.pad.left, c.pad.right], [0, 0]];
    const what = `y: x ${c.x.join('×')}, kernel ${c.k.join('×')}→${c.co}, pad ${Object.values(c.pad).join(',')}`;
    const reference = await onCpu(() => tf.conv2d(tf.tensor4d(xs, c.x), tf.tensor4d(ws, [...c.k, c.x[3], c.co]), 1, explicit));
    const { blas, backend } = await wasmWithBlas();
    const perImage = (c.x[1] + Math.max(c.pad.top, c.pad.bottom)) * (c.x[2] + Math.max(c.pad.left, c.pad.right)) * Math.max(c.x[3], c.co);
    for (const groupFloats of [undefined, 1, 2 * perImage]) {
      const before = liveBackendBuffers();
      tf.tidy(() => {
        const y = conv2dByTaps(backend, blas, tf.tensor4d(xs, c.x), tf.tensor4d(ws, [...c.k, c.x[3], c.co]), c.pad, groupFloats ? { groupFloats } : {});
        assert.ok(y, `${what}: the route applies`);
        assert.deepEqual(y.shape, [c.x[0], c.x[1] + c.pad.top + c.pad.bottom - c.k[0] + 1, c.x[2] + c.pad.left + c.pad.right - c.k[1] + 1, c.co]);
        assertClose(readAndFree(backend, y), reference, 1e-5, `${what}, groups of ${groupFloats ?? 'default'} values`);
      });
      assert.equal(liveBackendBuffers(), before, `${what}: backend buffers left behind`);
    }
  }
});

test('filter gradients by taps equal the cpu kernel, whole batch, image by image and in groups of two', { skip }, async () => {
  const random = Random.fromKey('blas-filter-data');
  for (const c of cases('blas-filter', 14)) {
    const [oh, ow] = [c.x[1] + c.pad.top + c.pad.bottom - c.k[0] + 1, c.x[2] + c.pad.left + c.pad.right - c.k[1] + 1];
    const xs = uniform(random, c.x.reduce((a, b) => a * b));
    const dys = uniform(random, c.x[0] * oh * ow * c.co);
    const explicit: tf.backend_util.ExplicitPadding = [[0, 0], [c.pad.top, c.pad.bottom], [c.pad.left, c.pad.right], [0, 0]];
    const what = `dW: x ${c.x.join('×')}, kernel ${c.k.join('×')}→${c.co}, pad ${Object.values(c.pad).join(',')}`;
    // d/dW of Σ conv(x, W) ⊙ dy is the filter gradient for upstream gradient dy.
    const reference = await onCpu(() => {
      const [x, dy] = [tf.tensor4d(xs, c.x), tf.tensor4d(dys, [c.x[0], oh, ow, c.co])];
      return tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, w as tf.Tensor4D, 1, explicit), dy)))(tf.zeros([...c.k, c.x[3], c.co]));
    });
    const { blas, backend } = await wasmWithBlas();
    const perImage = (c.x[1] + Math.max(c.pad.top, c.pad.bottom)) * (c.x[2] + Math.max(c.pad.left, c.pad.right)) * Math.max(c.x[3], c.co);
    for (const groupFloats of [undefined, 1, 2 * perImage]) {
      const before = liveBackendBuffers();
      tf.tidy(() => {
        const dW = conv2dFilterGradByTaps(backend, blas, tf.tensor4d(xs, c.x), tf.tensor4d(dys, [c.x[0], oh, ow, c.co]), c.k, c.pad.top, c.pad.left, groupFloats ? { groupFloats } : {});
        assert.ok(dW, `${what}: the route applies`);
        assert.deepEqual(dW.shape, [...c.k, c.x[3], c.co]);
        assertClose(readAndFree(backend, dW), reference, 1e-5, `${what}, groups of ${groupFloats ?? 'default'} values`);
      });
      assert.equal(liveBackendBuffers(), before, `${what}: backend buffers left behind`);
    }
  }
});

test('the grid refuses paddings that give more outputs than cells, and the kernel then takes the backend\'s own', { skip }, async () => {
  const { blas, backend } = await wasmWithBlas();
  tf.tidy(() => {
    const [x, w] = [tf.ones([1, 5, 5, 2]), tf.ones([3, 3, 2, 1])];
    // A padding of 3 on both sides of a 3×3 filter: 9 output rows, 8 grid rows.
    assert.equal(conv2dByTaps(backend, blas, x, w, { top: 3, bottom: 3, left: 1, right: 1 }), undefined);
    // Through the registered kernel it is still right: every output sums the 2 channels of the inputs it covers.
    const y = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, [[0, 0], [3, 3], [1, 1], [0, 0]]);
    assert.deepEqual(y.shape, [1, 9, 5, 1]);
    assert.equal(y.dataSync()[0], 0);
    assert.equal(y.dataSync()[4 * 5 + 2], 18);
  });
});

test('products on the library equal the cpu kernel: transposes, shared and broadcast batches, empty inner size', { skip }, async () => {
  const random = Random.fromKey('blas-matmul');
  const shapes: Array<{ a: number[]; b: number[]; ta: boolean; tb: boolean }> = [];
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    const [m, k, n] = [random.int(1, 9), random.int(1, 9), random.int(1, 9)];
    const [ra, ca, rb, cb] = [ta ? k : m, ta ? m : k, tb ? n : k, tb ? k : n];
    shapes.push({ a: [3, ra, ca], b: [3, rb, cb], ta, tb }, { a: [4, ra, ca], b: [1, rb, cb], ta, tb }, { a: [1, ra, ca], b: [2, rb, cb], ta, tb }, { a: [ra, ca], b: [rb, cb], ta, tb });
  }
  shapes.push({ a: [2, 3, 0], b: [2, 0, 4], ta: false, tb: false });
  for (const s of shapes) {
    const [as, bs] = [uniform(random, s.a.reduce((x, y) => x * y, 1)), uniform(random, s.b.reduce((x, y) => x * y, 1))];
    const what = `a [${s.a}]${s.ta ? 'ᵀ' : ''} · b [${s.b}]${s.tb ? 'ᵀ' : ''}`;
    const reference = await onCpu(() => tf.matMul(tf.tensor(as, s.a), tf.tensor(bs, s.b), s.ta, s.tb));
    const { blas, backend } = await wasmWithBlas();
    const before = liveBackendBuffers();
    tf.tidy(() => {
      const c = gemmProduct(backend, blas, tf.tensor(as, s.a), tf.tensor(bs, s.b), s.ta, s.tb);
      assert.ok(c, `${what}: the route applies`);
      assertClose(readAndFree(backend, c), reference, 1e-5, what);
    });
    assert.equal(liveBackendBuffers(), before, `${what}: backend buffers left behind`);
  }
});

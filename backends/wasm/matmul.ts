/**
 * `BatchMatMul` and `_FusedMatMul` on wasm: transposed operands transposed explicitly (or the
 * transposed product computed when that moves less), then XNNPACK's fast path, one product per
 * batch entry where the backend's batched product would take its naive loop, and a guard against
 * the backend's packing cache, which is keyed by tensor id alone.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type Original, withTensors, prod, type HeapBackend } from './kernel-util.ts';
import type { Blas } from './blas.ts';

/**
 * The batch sizes of a product's operands (their dimensions before the last two) and the output's
 * outer shape, where the batches pair entry by entry: the same outer shape, or one operand with a
 * batch of one (shared). The output takes the larger batch's outer shape (the longer one when
 * both are 1, as broadcasting does). Undefined where they do not pair.
 */
function pairedBatches(a: tf.TensorInfo, b: tf.TensorInfo): { batchA: number; batchB: number; outer: number[] } | undefined {
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const [batchA, batchB] = [prod(outerA), prod(outerB)];
  const sameOuter = outerA.length === outerB.length && outerA.every((d, i) => d === outerB[i]);
  if (!sameOuter && batchA !== 1 && batchB !== 1) return undefined;
  const outer = batchA !== batchB ? (batchA > batchB ? outerA : outerB) : outerA.length >= outerB.length ? outerA : outerB;
  return { batchA, batchB, outer };
}

/**
 * A float32 product on a native library (blas.ts), transposes included, read and written in
 * place on the heap: a [batch or 1, …] · b [batch or 1, …], one library call per batch entry, or
 * one for the whole batch when b is shared and a is not transposed (the batch folds into rows).
 * @returns undefined for other dtypes or batch shapes that do not pair entry by entry.
 */
export function gemmProduct(backend: HeapBackend, blas: Blas, a: tf.TensorInfo, b: tf.TensorInfo, ta: boolean, tb: boolean): tf.TensorInfo | undefined {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return undefined;
  const paired = pairedBatches(a, b);
  if (!paired) return undefined;
  const { batchA, batchB, outer } = paired;
  const [ra, ca] = a.shape.slice(-2) as [number, number];
  const [rb, cb] = b.shape.slice(-2) as [number, number];
  const [m, k, n] = [ta ? ca : ra, ta ? ra : ca, tb ? rb : cb];
  if (k !== (tb ? cb : rb)) return undefined;
  const batch = Math.max(batchA, batchB);
  const out = backend.makeOutput([...outer, m, n], 'float32');
  const [av, bv, cv] = [a, b, out].map((t) => backend.typedArrayFromHeap(t) as Float32Array) as [Float32Array, Float32Array, Float32Array];
  if (m * n === 0) return out;
  if (k === 0) {
    cv.fill(0);
    return out;
  }
  if (batchB === 1 && !ta) {
    blas.gemm(false, tb, batch * m, n, k, av, ca, bv, cb, 0, cv, n);
    return out;
  }
  for (let i = 0; i < batch; i++) {
    const [ia, ib] = [batchA === 1 ? 0 : i, batchB === 1 ? 0 : i];
    blas.gemm(ta, tb, m, n, k, av.subarray(ia * ra * ca), ca, bv.subarray(ib * rb * cb), cb, 0, cv.subarray(i * m * n), n);
  }
  return out;
}

function swapLast<T extends tf.Tensor>(t: T): T {
  const perm = t.shape.map((_, i) => i);
  const r = perm.length;
  [perm[r - 2], perm[r - 1]] = [perm[r - 1]!, perm[r - 2]!];
  return tf.transpose(t, perm) as T;
}

/**
 * One product per batch entry on the backend's own kernel, for operands without transposition:
 * a [n or 1, M, K] · b [n or 1, K, N] → [n, M, N] (an operand with batch 1 is shared). The wasm
 * kernel takes XNNPACK's fast path only for a batch of one; a batched product goes to a naive
 * loop (measured on attention shapes: [32, 1024, 4] · [32, 4, 256] 150 ms batched against 8 ms as
 * 32 single products). Each entry is copied out of and back into the heap: two memcpys, against a
 * product that reads and writes the same bytes.
 */
function productPerEntry(backend: HeapBackend, original: tf.KernelConfig, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo {
  const [na, m, k] = a.shape as [number, number, number];
  const [nb, , n] = b.shape as [number, number, number];
  const batch = Math.max(na, nb);
  const out = backend.makeOutput([batch, m, n], 'float32');
  for (let i = 0; i < batch; i++) {
    const ai = backend.makeOutput([1, m, k], 'float32');
    const bi = backend.makeOutput([1, k, n], 'float32');
    const ia = na === 1 ? 0 : i;
    const ib = nb === 1 ? 0 : i;
    // Views after every makeOutput: growing the heap detaches the earlier ones.
    backend.typedArrayFromHeap(ai).set(backend.typedArrayFromHeap(a).subarray(ia * m * k, (ia + 1) * m * k));
    backend.typedArrayFromHeap(bi).set(backend.typedArrayFromHeap(b).subarray(ib * k * n, (ib + 1) * k * n));
    const ci = original.kernelFunc({ inputs: { a: ai, b: bi }, backend, attrs: { transposeA: false, transposeB: false } }) as tf.TensorInfo;
    backend.typedArrayFromHeap(out).set(backend.typedArrayFromHeap(ci), i * m * n);
    for (const t of [ai, bi, ci]) backend.disposeData(t.dataId);
  }
  return out;
}

/**
 * The shape ("K×N") each right operand was first packed with, by data id. The backend caches
 * XNNPACK's packing of a product's right operand by tensor id alone, not by shape
 * (tfjs-backend-wasm 4.22): the same data reshaped, [4] as [4, 1] and then as [1, 4], got the
 * first packing and a wrong product, reading past the data (the reproduction is in
 * docs/backends.md; tests/pipeline/backend.test.ts has the case). The backend's
 * `_FusedMatMul` shares that cache (its key adds the bias and activation, not the shape), and a
 * fused product on a stale packing aborted the wasm module: both kernels go through here.
 */
const packedAs = new WeakMap<tf.DataId, string>();

/**
 * Whether the backend takes its cached XNNPACK path for a (plain or fused) product: float32, no
 * transposed operand, a batch of one on both sides. Only there does it pack and cache b.
 */
function packsRightOperand(a: tf.TensorInfo, b: tf.TensorInfo, attrs: tf.NamedAttrMap): boolean {
  return a.dtype === 'float32' && b.dtype === 'float32' && !attrs['transposeA'] && !attrs['transposeB'] && prod(a.shape.slice(0, -2)) <= 1 && prod(b.shape.slice(0, -2)) <= 1;
}

/** A plain product on the backend's fast path; a right operand packed before with another shape goes in as a copy (a new id). */
function packedProduct(original: tf.KernelConfig, args: Parameters<tf.KernelFunc>[0], backend: HeapBackend): tf.TensorInfo {
  const b = args.inputs['b']!;
  const shape = `${b.shape[b.shape.length - 2]}×${b.shape[b.shape.length - 1]}`;
  const seen = packedAs.get(b.dataId);
  if (seen === undefined || seen === shape) {
    packedAs.set(b.dataId, shape);
    return original.kernelFunc(args) as tf.TensorInfo;
  }
  const copy = backend.makeOutput(b.shape, 'float32');
  backend.typedArrayFromHeap(copy).set(backend.typedArrayFromHeap(b));
  packedAs.set(copy.dataId, shape);
  try {
    return original.kernelFunc({ ...args, inputs: { ...args.inputs, b: copy } }) as tf.TensorInfo;
  } finally {
    backend.disposeData(copy.dataId);
  }
}

/**
 * What packing one value of a product's right operand costs, in values moved by a transpose here:
 * XNNPACK packed a fresh [34 848, 64] right operand in about 25 ms (≈ 90 M values/s), against
 * 250 – 600 M values/s for {@link transposeBlock}.
 */
const PACK_COST = 4;

/**
 * BatchMatMul on a native library where there is one ({@link gemmProduct}); otherwise in the
 * form the backend computes fast: no transposed operand (the backend's
 * transposeA path is 50× slower than a product of the same size) and a batch of one per call.
 *
 * With transposeA, C = AᵀB (or AᵀBᵀ) is computed either by transposing A or as the transpose of
 * Cᵀ = BᵀA (or BA), whichever moves less, counting that the right operand of a product is packed
 * by XNNPACK on every call ({@link PACK_COST}). For the gradients of attention, Aᵀ of [32, 1024,
 * 256] times a [32, 1024, 1 – 4]: transposing A and a product took 37 – 39 ms, the transposed
 * product (A packed, 32 times 262 144 values) 76 – 77 ms.
 */
export function batchMatMulKernel(original: Original, blas?: Blas): tf.KernelFunc {
  return (args) => {
    const { inputs } = args;
    const attrs = args.attrs ?? {};
    const backend = args.backend as HeapBackend;
    const [ta, tb] = [Boolean(attrs['transposeA']), Boolean(attrs['transposeB'])];
    const [a, b] = [inputs['a']!, inputs['b']!];
    const native = blas && gemmProduct(backend, blas, a, b, ta, tb);
    if (native) return native;
    if (packsRightOperand(a, b, attrs)) return packedProduct(original!, args, backend);
    const paired = pairedBatches(a, b);
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || !paired) return original!.kernelFunc(args);
    const { batchA, batchB, outer } = paired;
    return withTensors(inputs, backend, ['a', 'b'], (at, bt) =>
      tf.tidy(() => {
        // 3D views: [batch, rows, cols] as stored.
        const a3 = tf.reshape(at!, [batchA, a.shape[a.shape.length - 2]!, a.shape[a.shape.length - 1]!]) as tf.Tensor3D;
        const b3 = tf.reshape(bt!, [batchB, b.shape[b.shape.length - 2]!, b.shape[b.shape.length - 1]!]) as tf.Tensor3D;
        const [m, n] = [ta ? a.shape[a.shape.length - 1]! : a.shape[a.shape.length - 2]!, tb ? b.shape[b.shape.length - 2]! : b.shape[b.shape.length - 1]!];
        const plain = (x: tf.Tensor3D, y: tf.Tensor3D): tf.Tensor3D => {
          // A shared right operand: the batch folds into the rows of one product.
          if (y.shape[0] === 1 && x.shape[0]! > 1) {
            const folded = tf.reshape(x, [x.shape[0]! * x.shape[1]!, x.shape[2]!]) as tf.Tensor2D;
            return tf.reshape(tf.matMul(folded, tf.reshape(y, [y.shape[1], y.shape[2]]) as tf.Tensor2D), [x.shape[0], x.shape[1], y.shape[2]]);
          }
          if (x.shape[0] === 1 && y.shape[0] === 1) return tf.matMul(x, y);
          return tf.engine().makeTensorFromTensorInfo(productPerEntry(backend, original!, x, y), backend) as tf.Tensor3D;
        };
        let c: tf.Tensor3D;
        // Values moved: explicit transposes count 1 each, a packed right operand PACK_COST each.
        const direct = a3.size + (tb ? b3.size : 0) + PACK_COST * b3.size;
        const swapped = PACK_COST * a3.size + (tb ? 0 : b3.size) + Math.max(batchA, batchB) * m * n;
        const swapAndTransposeOut = ta && swapped < direct;
        if (swapAndTransposeOut) {
          // Cᵀ = op(B)ᵀ · A, where op(B)ᵀ is B itself when tb, else Bᵀ.
          c = swapLast(plain(tb ? b3 : swapLast(b3), a3));
        } else {
          c = plain(ta ? swapLast(a3) : a3, tb ? swapLast(b3) : b3);
        }
        return tf.reshape(c, [...outer, m, n]);
      }),
    );
  };
}

/**
 * _FusedMatMul (a product with bias and activation, as tfjs-layers' Dense makes) on the backend's
 * own kernel; only the shape guard of {@link packedProduct} is added, on the same path where the
 * backend packs and caches the right operand (no transposes, a batch of one).
 */
export function fusedMatMulKernel(original: Original): tf.KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    return packsRightOperand(a, b, args.attrs ?? {}) ? packedProduct(original!, args, args.backend as HeapBackend) : (original!.kernelFunc(args) as tf.TensorInfo);
  };
}

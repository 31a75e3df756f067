/**
 * Kernels that make training fast on the wasm backend, each built from what that backend does
 * well: XNNPACK's matrix product and forward 2D convolution (a 1024³ product at 17 – 45 GFLOP/s
 * per thread on this machine, by day and hour).
 * Measured on this machine before these (ms for one call):
 *
 *   matMul 1024³ 49 · with transposeB 606 · with transposeA 2480 (tfjs's gradient of matMul uses both)
 *   sum of a fresh [32768, 64] over axis 0: ≈ 100 · as ones · X: 11 · as an average pooling: 0.55
 *   (batch-norm moments, bias gradients)
 *   Conv2DBackpropInput ≈ 4 GFLOP/s · Conv2D ≈ 44 GFLOP/s; Conv2DBackpropFilter: none at all
 *   Identity copies its input (every gradient pass-through); a 2D Transpose runs at 60 M values/s
 *
 * So, registered for wasm by {@link registerFastKernels}:
 * - `Identity` shares the input's data (as the cpu backend does); tensors are immutable.
 * - `Transpose` runs as copies in JS (250 – 600 M values/s by layout) for the permutations
 *   training uses once adjacent axes are merged: [1,0], [0,2,1], [2,1,0] and [1,0,2].
 * - `BatchMatMul` with transposed operands transposes them explicitly (or, for transposeA, computes
 *   the transposed product when that moves less, counting XNNPACK's packing of the right
 *   operand), then takes the fast path: one product for a batch of one or a shared right
 *   operand, else one product per batch entry (the backend's batched product is a naive loop,
 *   ≈ 0.6 GFLOP/s on the attention's shapes). A right operand once packed under another shape
 *   goes in as a copy (the backend caches packings by tensor id alone).
 * - `_FusedMatMul` (Dense layers with bias and activation) gets that same guard, nothing else.
 * - `ShiftStack` and its gradient (`shift-stack.ts`): the temporal taps of a 3D convolution in one
 *   pass over the heap each way, instead of pad, slices and a concat (whose gradient is a strided split).
 * - `Sum` and `Mean` over leading axes are one average pooling (XNNPACK).
 * - `Conv2DBackpropInput` is one forward convolution per stride phase with the flipped filter.
 * - `Conv2DBackpropFilter` at stride 1 is one matrix product per filter tap over a padded,
 *   channel-major copy of x read in place ("flat shifts"); at other strides, one forward
 *   convolution with batch and channels swapped.
 *
 * Anything outside a kernel's fast case (other layouts, dtypes, axes) goes to the backend's own
 * kernel, so results never depend on which path ran; tests compare every path with the cpu backend.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';
import { registerShiftStack, type HeapBackend } from './shift-stack.ts';

type Attrs = Record<string, unknown>;
type Original = tf.KernelConfig | undefined;

/**
 * Kernels are called with their inputs as Tensors by the ops, or as bare TensorInfos by other
 * kernels; a bare one gets a Tensor holding a reference of its own, disposed by the caller.
 */
function asTensor(info: tf.TensorInfo, backend: tf.KernelBackend): tf.Tensor {
  if (info instanceof tf.Tensor) return info;
  backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend);
}

function withTensors<T>(inputs: tf.NamedTensorInfoMap, backend: tf.KernelBackend, names: readonly string[], body: (...ts: tf.Tensor[]) => T): T {
  const ts = names.map((n) => asTensor(inputs[n]!, backend));
  try {
    return body(...ts);
  } finally {
    ts.forEach((t, i) => {
      if (t !== inputs[names[i]!]) t.dispose();
    });
  }
}

const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

// ---------------------------------------------------------------------------------------------
// Transpose

/**
 * Transpose of a rows × cols block: element (i, j) at `src[from + i·srcStride + j]` goes to
 * `dst[to + j·dstStride + i]`. Four source columns per pass over a band of rows, each written as
 * a run of its destination row (the band's source lines stay in cache for the next four columns):
 * measured 2 – 3× a 16 × 16 blocked loop ([32, 1024, 256] → [32, 256, 1024]: 594 against 200 M
 * values/s; [32768, 64]: 435 against 194).
 */
function transposeBlock(src: ArrayLike<number>, from: number, srcStride: number, rows: number, cols: number, dst: { [i: number]: number }, to: number, dstStride: number): void {
  const BAND = 512;
  for (let i0 = 0; i0 < rows; i0 += BAND) {
    const i1 = Math.min(i0 + BAND, rows);
    let j = 0;
    for (; j + 4 <= cols; j += 4) {
      const d0 = to + j * dstStride;
      const [d1, d2, d3] = [d0 + dstStride, d0 + 2 * dstStride, d0 + 3 * dstStride];
      for (let i = i0; i < i1; i++) {
        const at = from + i * srcStride + j;
        dst[d0 + i] = src[at]!;
        dst[d1 + i] = src[at + 1]!;
        dst[d2 + i] = src[at + 2]!;
        dst[d3 + i] = src[at + 3]!;
      }
    }
    for (; j < cols; j++) {
      const d = to + j * dstStride;
      for (let i = i0; i < i1; i++) dst[d + i] = src[from + i * srcStride + j]!;
    }
  }
}

/**
 * Reduces a permutation to its essential form: size-1 axes dropped, input axes that stay adjacent
 * merged. Returns the merged sizes (in input order) and the permutation of the merged axes.
 */
export function reducedPermutation(shape: readonly number[], perm: readonly number[]): { dims: number[]; perm: number[] } {
  const live = shape.map((_, a) => a).filter((a) => shape[a]! !== 1);
  const kept = perm.filter((a) => shape[a]! !== 1).map((a) => live.indexOf(a));
  const groups: number[][] = [];
  for (const a of kept) {
    const last = groups[groups.length - 1];
    if (last && last[last.length - 1]! + 1 === a) last.push(a);
    else groups.push([a]);
  }
  const inputOrder = [...groups].sort((g, h) => g[0]! - h[0]!);
  return { dims: inputOrder.map((g) => prod(g.map((a) => shape[live[a]!]!))), perm: groups.map((g) => inputOrder.indexOf(g)) };
}

/**
 * Copies `src` (float32 or int32 data of `dims`, row-major) permuted by `perm` into `dst`, for the
 * reduced permutations that training uses; false for any other (the caller falls back).
 */
export function permuteInto(src: Float32Array | Int32Array | Uint8Array, dims: readonly number[], perm: readonly number[], dst: Float32Array | Int32Array | Uint8Array): boolean {
  const key = perm.join(',');
  if (key === '' || key === '0') {
    dst.set(src);
    return true;
  }
  if (key === '1,0') {
    const [r, c] = dims as [number, number];
    transposeBlock(src, 0, c, r, c, dst, 0, r);
    return true;
  }
  if (key === '0,2,1') {
    const [b, r, c] = dims as [number, number, number];
    for (let k = 0; k < b; k++) transposeBlock(src, k * r * c, c, r, c, dst, k * r * c, r);
    return true;
  }
  if (key === '2,1,0') {
    // out[c, m, a] = in[a, m, c]: for each m, an a × c block with row strides m·c and m·a.
    const [a, m, c] = dims as [number, number, number];
    if (c < 16) {
      for (let k = 0; k < m; k++) transposeBlock(src, k * c, m * c, a, c, dst, k * a, m * a);
    } else {
      // Row by row of the source: its c values go to c destination lines, which the next rows
      // (the same m, a + 1) fill further while they are still in cache (≈ 1.3× the blocked copy
      // for the convolutions' [32, 1156, 64…192]).
      for (let k = 0; k < m; k++) {
        for (let i = 0; i < a; i++) {
          const from = i * m * c + k * c;
          const to = k * a + i;
          for (let j = 0; j < c; j++) dst[to + j * m * a] = src[from + j]!;
        }
      }
    }
    return true;
  }
  if (key === '1,0,2') {
    // out[b, a, :] = in[a, b, :]: contiguous runs of c values.
    // Runs of 16 or more values in one heap (the kernel's case) are one memmove each; otherwise a
    // loop, which a subarray and a set per run do not beat (measured for [32, 1024, c]: 34 M values/s
    // by set at c = 4 against 191 M by the loop, and about the same at c = 32 and 64).
    const [a, b, c] = dims as [number, number, number];
    if (c >= 16 && src.buffer === dst.buffer && src.BYTES_PER_ELEMENT === dst.BYTES_PER_ELEMENT) {
      const heap = new (src.constructor as Float32ArrayConstructor)(src.buffer as ArrayBuffer);
      const [s0, d0] = [src.byteOffset / src.BYTES_PER_ELEMENT, dst.byteOffset / dst.BYTES_PER_ELEMENT];
      for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) heap.copyWithin(d0 + (j * a + i) * c, s0 + (i * b + j) * c, s0 + (i * b + j + 1) * c);
    } else {
      for (let i = 0; i < a; i++) {
        for (let j = 0; j < b; j++) {
          const from = (i * b + j) * c;
          const to = (j * a + i) * c;
          for (let k = 0; k < c; k++) dst[to + k] = src[from + k]!;
        }
      }
    }
    return true;
  }
  return false;
}

function transposeKernel(original: Original): tf.KernelFunc {
  return (args) => {
    const { inputs } = args;
    const attrs = args.attrs ?? {};
    const backend = args.backend as HeapBackend;
    const x = inputs['x']!;
    const perm = attrs['perm'] as number[];
    const reduced = reducedPermutation(x.shape, perm);
    const supported = (x.dtype === 'float32' || x.dtype === 'int32') && ['1,0', '0,2,1', '2,1,0', '1,0,2'].includes(reduced.perm.join(','));
    if (!supported) return original!.kernelFunc(args);
    // makeOutput may grow the heap, which detaches views taken before it: take them after.
    const out = backend.makeOutput(perm.map((a) => x.shape[a]!), x.dtype);
    permuteInto(backend.typedArrayFromHeap(x), reduced.dims, reduced.perm, backend.typedArrayFromHeap(out));
    return out;
  };
}

// ---------------------------------------------------------------------------------------------
// Identity, BatchMatMul, _FusedMatMul, Sum, Mean

const identityKernel: tf.KernelFunc = ({ inputs, backend }) => {
  const x = inputs['x']!;
  (backend as tf.KernelBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

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
 * first packing and a wrong product, reading past the data (found when more products took their
 * right operand as given; tests/pipeline/backend.test.ts has the case). The backend's
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
 * BatchMatMul in the form the backend computes fast: no transposed operand (the backend's
 * transposeA path is 50× slower than a product of the same size) and a batch of one per call.
 *
 * With transposeA, C = AᵀB (or AᵀBᵀ) is computed either by transposing A or as the transpose of
 * Cᵀ = BᵀA (or BA), whichever moves less, counting that the right operand of a product is packed
 * by XNNPACK on every call ({@link PACK_COST}). For the gradients of attention, Aᵀ of [32, 1024,
 * 256] times a [32, 1024, 1 – 4]: transposing A and a product took 37 – 39 ms, the transposed
 * product (A packed, 32 times 262 144 values) 76 – 77 ms.
 */
function batchMatMulKernel(original: Original): tf.KernelFunc {
  return (args) => {
    const { inputs } = args;
    const attrs = args.attrs ?? {};
    const backend = args.backend as HeapBackend;
    const [ta, tb] = [Boolean(attrs['transposeA']), Boolean(attrs['transposeB'])];
    const [a, b] = [inputs['a']!, inputs['b']!];
    const outerA = a.shape.slice(0, -2);
    const outerB = b.shape.slice(0, -2);
    const [batchA, batchB] = [prod(outerA), prod(outerB)];
    const sameOuter = outerA.length === outerB.length && outerA.every((d, i) => d === outerB[i]);
    const batched = sameOuter || batchA === 1 || batchB === 1;
    if (packsRightOperand(a, b, attrs)) return packedProduct(original!, args, backend);
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || !batched) return original!.kernelFunc(args);
    const outer = batchA >= batchB ? outerA : outerB;
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
function fusedMatMulKernel(original: Original): tf.KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    return packsRightOperand(a, b, args.attrs ?? {}) ? packedProduct(original!, args, args.backend as HeapBackend) : (original!.kernelFunc(args) as tf.TensorInfo);
  };
}

/**
 * Reductions over the leading axes as one average pooling of X viewed as [1, R, 1, C] with an
 * R × 1 window (times R for a sum). A product ones · X was the first route, but XNNPACK packs
 * its right operand (here the fresh X) on every call: 11 ms against 0.55 ms for [32768, 64].
 */
function leadingReduceKernel(original: Original, mean: boolean): tf.KernelFunc {
  return (args) => {
    const { inputs, backend } = args;
    const attrs = args.attrs ?? {};
    const x = inputs['x']!;
    const axes = tf.util.parseAxisParam(attrs['axis'] as number | number[], x.shape).sort((a, b) => a - b);
    const k = axes.length;
    const leading = k > 0 && k < x.shape.length && axes.every((a, i) => a === i);
    if (!leading || x.dtype !== 'float32') return original!.kernelFunc(args);
    const rows = prod(x.shape.slice(0, k));
    const rest = x.shape.slice(k);
    const outShape = attrs['keepDims'] ? [...axes.map(() => 1), ...rest] : rest;
    return withTensors(inputs, backend as tf.KernelBackend, ['x'], (t) =>
      tf.tidy(() => {
        const averaged = tf.avgPool(tf.reshape(t!, [1, rows, 1, prod(rest)]) as tf.Tensor4D, [rows, 1], 1, 'valid');
        return tf.reshape(mean ? averaged : tf.mul(averaged, rows), outShape);
      }),
    );
  };
}

// ---------------------------------------------------------------------------------------------
// Convolution gradients

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** Pads (positive) or crops (negative) axes 1 and 2 of an NHWC tensor. */
function padOrCrop(x: tf.Tensor4D, [top, bottom]: [number, number], [left, right]: [number, number]): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  let y = x;
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    const t = Math.max(0, -top);
    const l = Math.max(0, -left);
    y = tf.slice(y, [0, t, l, 0], [n, h - t - Math.max(0, -bottom), w - l - Math.max(0, -right), c]);
  }
  const p = [Math.max(0, top), Math.max(0, bottom), Math.max(0, left), Math.max(0, right)];
  return p.some((v) => v > 0) ? tf.pad(y, [[0, 0], [p[0]!, p[1]!], [p[2]!, p[3]!], [0, 0]]) : y;
}

/**
 * A stride-1 convolution of x padded (positive) or cropped (negative) on axes 1 and 2: crops are
 * slices, pads go to the convolution as explicit padding (no padded copy of x is made).
 */
function convPadded(x: tf.Tensor4D, filter: tf.Tensor4D, [top, bottom]: [number, number], [left, right]: [number, number], dilations: [number, number] = [1, 1]): tf.Tensor4D {
  const cropped = padOrCrop(x, [Math.min(0, top), Math.min(0, bottom)], [Math.min(0, left), Math.min(0, right)]);
  const pad: tf.backend_util.ExplicitPadding = [[0, 0], [Math.max(0, top), Math.max(0, bottom)], [Math.max(0, left), Math.max(0, right)], [0, 0]];
  return tf.conv2d(cropped, filter, 1, pad, 'NHWC', dilations);
}

/** Filter taps first, first + stride, … of one axis: `taps` of them. */
interface TapRange {
  readonly first: number;
  readonly taps: number;
  readonly stride: number;
}

/**
 * The taps `ty` × `tx` of a filter [kh, kw, ci, co], reversed along both axes and with in and out
 * swapped: [ty.taps, tx.taps, co, ci], tap (i, j) being the filter's (ty.first + (ty.taps − 1 − i)
 * · ty.stride, tx.first + (tx.taps − 1 − j) · tx.stride). One pass over the heap (as ops, a strided
 * slice, a reverse and a transpose: three passes through slow kernels, ≈ 0.7 ms per call on the
 * discriminators' [3, 3, 32, 96] filters).
 */
function flippedTaps(filter: tf.Tensor4D, ty: TapRange, tx: TapRange): tf.Tensor4D {
  const [, , ci, co] = filter.shape;
  const backend = tf.backend() as HeapBackend;
  if (typeof backend.typedArrayFromHeap !== 'function' || filter.dtype !== 'float32') {
    return tf.tidy(() => {
      const picked = tf.stridedSlice(filter, [ty.first, tx.first, 0, 0], [ty.first + (ty.taps - 1) * ty.stride + 1, tx.first + (tx.taps - 1) * tx.stride + 1, ci, co], [ty.stride, tx.stride, 1, 1]);
      return tf.transpose(tf.reverse(picked, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
    });
  }
  const kw = filter.shape[1];
  const out = backend.makeOutput([ty.taps, tx.taps, co, ci], 'float32');
  const [src, dst] = [backend.typedArrayFromHeap(filter), backend.typedArrayFromHeap(out)];
  for (let i = 0; i < ty.taps; i++) {
    for (let j = 0; j < tx.taps; j++) {
      const tap = (ty.first + (ty.taps - 1 - i) * ty.stride) * kw + tx.first + (tx.taps - 1 - j) * tx.stride;
      transposeBlock(src, tap * ci * co, co, ci, co, dst, (i * tx.taps + j) * co * ci, ci);
    }
  }
  return tf.engine().makeTensorFromTensorInfo(out, backend) as tf.Tensor4D;
}

/** One stride phase along one axis: which filter taps feed it and how dy must be padded. */
interface Phase {
  /** First filter tap (the others follow every `stride`). */
  readonly first: number;
  /** Number of taps (may be 0: the phase gets no gradient). */
  readonly taps: number;
  /** Padding of dy before (negative: crop) and after. */
  readonly before: number;
  readonly after: number;
  /** Length of dx along the axis in this phase. */
  readonly length: number;
}

/**
 * For dx[s·a + r] = Σₘ dy[a + c − m] · W[s·m + q] (q = (r + p) mod s, c = (r + p − q) / s), the
 * phase r is a stride-1 correlation of dy with the taps W[q], W[q + s], … reversed.
 */
function phase(r: number, stride: number, kernel: number, padBefore: number, inLength: number, outLength: number): Phase {
  const q = (((r + padBefore) % stride) + stride) % stride;
  const c = (r + padBefore - q) / stride;
  const taps = q < kernel ? Math.ceil((kernel - q) / stride) : 0;
  const length = Math.ceil((inLength - r) / stride);
  const before = taps - 1 - c;
  const after = length - outLength - before + taps - 1;
  return { first: q, taps, before, after, length };
}

/** dx of a 2D convolution from forward convolutions: one per stride phase, interleaved. */
export function conv2dInputGradByPhases(dy: tf.Tensor4D, filter: tf.Tensor4D, inputShape: [number, number, number, number], attrs: ConvAttrs): tf.Tensor4D {
  const [kh, kw, ci] = filter.shape;
  const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const [n, h, w] = inputShape;
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  return tf.tidy(() => {
    // Phase (ry, rx) of dx: rows ry, ry + sh, …, columns rx, rx + sw, … (undefined: no taps feed it).
    const parts: Array<{ ry: number; rx: number; part: tf.Tensor4D | undefined }> = [];
    for (let ry = 0; ry < sh; ry++) {
      const py = phase(ry, sh, kh, info.padInfo.top, h, info.outHeight);
      for (let rx = 0; rx < sw; rx++) {
        const px = phase(rx, sw, kw, info.padInfo.left, w, info.outWidth);
        if (py.length <= 0 || px.length <= 0) continue;
        const fed = py.taps > 0 && px.taps > 0;
        const sub = fed ? flippedTaps(filter, { first: py.first, taps: py.taps, stride: sh }, { first: px.first, taps: px.taps, stride: sw }) : undefined;
        // [n, py.length, px.length, ci] by construction of the paddings.
        parts.push({ ry, rx, part: sub && convPadded(dy, sub, [py.before, py.after], [px.before, px.after]) });
      }
    }
    if (sh === 1 && sw === 1) return parts[0]!.part!;
    return interleavePhases(parts, [n, h, w, ci], [sh, sw]);
  });
}

/**
 * dx [n, h, w, ci] from its stride phases: phase (ry, rx) of shape [n, ⌈(h − ry)/sh⌉, ⌈(w − rx)/sw⌉,
 * ci] holds rows ry + sh·a and columns rx + sw·b; a phase without a part is zero. One pass over
 * the heap (as ops: a pad per phase, two stacks and a crop).
 */
function interleavePhases(parts: ReadonlyArray<{ ry: number; rx: number; part: tf.Tensor4D | undefined }>, shape: [number, number, number, number], [sh, sw]: [number, number]): tf.Tensor4D {
  const [n, h, w, ci] = shape;
  const backend = tf.backend() as HeapBackend;
  if (typeof backend.typedArrayFromHeap !== 'function' || parts.some(({ part }) => part && part.dtype !== 'float32')) {
    // Every phase padded to [hs, ws], interleaved by stacking, the excess cut.
    const [hs, ws] = [Math.ceil(h / sh), Math.ceil(w / sw)];
    const at = new Map(parts.map((p) => [p.ry * sw + p.rx, p.part]));
    const rows: tf.Tensor4D[] = [];
    for (let ry = 0; ry < sh; ry++) {
      const cols: tf.Tensor4D[] = [];
      for (let rx = 0; rx < sw; rx++) {
        const part = at.get(ry * sw + rx) ?? tf.zeros([n, Math.max(0, Math.ceil((h - ry) / sh)), Math.max(0, Math.ceil((w - rx) / sw)), ci]);
        cols.push(padOrCrop(part as tf.Tensor4D, [0, hs - part.shape[1]!], [0, ws - part.shape[2]!]));
      }
      rows.push(tf.reshape(tf.stack(cols, 3), [n, hs, ws * sw, ci]));
    }
    return tf.slice(tf.reshape(tf.stack(rows, 2), [n, hs * sh, ws * sw, ci]), [0, 0, 0, 0], [n, h, w, ci]) as tf.Tensor4D;
  }
  const out = backend.makeOutput([n, h, w, ci], 'float32');
  const dst = backend.typedArrayFromHeap(out);
  if (parts.length < sh * sw || parts.some(({ part }) => !part)) dst.fill(0);
  for (const { ry, rx, part } of parts) {
    if (!part) continue;
    const [, ph, pw] = part.shape;
    if (ph !== Math.ceil((h - ry) / sh) || pw !== Math.ceil((w - rx) / sw)) {
      throw new Error(`Conv2DBackpropInput: stride phase (${ry}, ${rx}) of dx [${shape.join(', ')}] came out [${part.shape.join(', ')}]`);
    }
    const src = backend.typedArrayFromHeap(part);
    for (let b = 0; b < n; b++) {
      for (let a = 0; a < ph; a++) {
        let from = (b * ph + a) * pw * ci;
        let to = ((b * h + ry + sh * a) * w + rx) * ci;
        for (let x = 0; x < pw; x++, from += ci, to += sw * ci) {
          if (ci >= 16) dst.set(src.subarray(from, from + ci), to);
          else for (let c = 0; c < ci; c++) dst[to + c] = src[from + c]!;
        }
      }
    }
  }
  return tf.engine().makeTensorFromTensorInfo(out, backend) as tf.Tensor4D;
}

/** What {@link heapView} needs of the wasm backend (public members of its class, not of KernelBackend). */
interface ViewingBackend extends HeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): tf.TensorInfo;
  getMemoryOffset(dataId: tf.DataId): number;
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } | undefined };
}

function canView(backend: HeapBackend): backend is ViewingBackend {
  const b = backend as Partial<ViewingBackend>;
  return typeof b.getMemoryOffset === 'function' && typeof b.dataIdMap?.get === 'function';
}

/**
 * A float32 tensor over `base`'s heap memory from element `offset` on, for the duration of one
 * kernel call, so that a product can read a slice of a buffer without copying it. `release`
 * drops the view without freeing that memory (its offset is set to 0 first: the backend frees
 * a tensor's memory when its last reference goes, and freeing address 0 does nothing). The
 * caller keeps `base` alive until then and must not give the view to anything that keeps it.
 * @returns undefined on a backend without these members, or whose `memoryOffset` field is not
 * what `getMemoryOffset` reads.
 */
function heapView(backend: HeapBackend, base: tf.TensorInfo, offset: number, shape: number[]): { info: tf.TensorInfo; release(): void } | undefined {
  if (!canView(backend)) return undefined;
  // The field set to 0 on release must be the one the backend frees: check it names base's memory.
  const start = backend.getMemoryOffset(base.dataId);
  if (backend.dataIdMap.get(base.dataId)?.memoryOffset !== start) return undefined;
  const info = backend.makeOutput(shape, 'float32', start + offset * 4);
  return {
    info,
    release: () => {
      const entry = backend.dataIdMap.get(info.dataId);
      if (!entry) return;
      entry.memoryOffset = 0;
      backend.disposeData(info.dataId, true);
    },
  };
}

/**
 * Largest grid of {@link conv2dFilterGradByShifts}, in values (4 MiB): the images of the batch go
 * through in groups of at most this many grid values, so the route's extra memory stays small
 * however large x is (the whole batch's grid would be the size of x: 27 MB for the demo
 * preset's largest layer). Speed is about the same: on the demo preset, one grid and groups
 * measured alike on one thread, and 2.19 – 2.29 s against 2.10 – 2.21 s per iteration on two
 * threads in three alternating pairs, within that day's spread.
 */
const GROUP_FLOATS = 1 << 20;

/**
 * Largest grid of dy in {@link conv2dFilterGradByShifts}, in values (512 KiB). dy's grid is the
 * right operand of every tap's product: XNNPACK packs it and then streams all of it once for each
 * few rows (channels of x) of the left operand, so a grid that stays in the core's L2 (1 – 2 MiB)
 * is read from there instead of from memory. Measured on the demo preset, one thread, alternating
 * iterations in one process (medians of 12): the filter gradients of an iteration took 733 ms
 * against 806 with x's limit alone (4 clips), 386 against 411 (2 clips, as each of two threads);
 * the 3×3 layer 12 → 64 went from 51 to 25 ms and the 1×1 layer 4 → 64 from 30 to 11 ms.
 */
const DY_GROUP_FLOATS = 1 << 17;

/**
 * dW of a stride-1 convolution as one matrix product per filter tap, all reading one padded copy
 * of x with no patches materialised ("flat shifts"). x goes channel-major onto a zero-padded grid
 * of N·Hp·Wp cells per channel, Hp = H + max(top, bottom) and Wp = W + max(left, right): one
 * zero band serves as the bottom (right) padding of an image (row) and the top (left) padding of
 * the next, so that a shift of the whole grid by o = i·Wp + j cells moves every output position
 * onto what tap (i, j) reads. dy goes onto the same grid (zero at cells with no output). Then
 *
 *   dW[i, j] = X_o · dyGrid,   X_o[c, k] = grid[c·S + o + k],  S = N·Hp·Wp
 *
 * is one [C, S] · [S, Co] product, X_o a contiguous slice of the grid, read in place (a view,
 * {@link heapView}). A slice that runs past its channel reads the next channel's first cells, at
 * positions where dyGrid is zero. The products are XNNPACK's matrix product with dyGrid packed
 * once (the backend caches the packing by tensor). Measured on the model's 3×3 layers against
 * the convolution route below: 1.02 – 1.18× with each tap's slice copied, and views a further
 * 1.06 – 1.11×; a 1×1 filter [32,32,32,4] → 64 took 24 ms against 35 (the swapped convolution
 * ran at 0.5 GFLOP/s). A whole training iteration: about 1.08× (median of alternating pairs).
 * Copying x onto the grid took 269 ms of a 4.1 s iteration by the earlier 16 × 16 blocked
 * transpose, 128 ms by four channels per pass ({@link transposeBlock} now).
 * @param groupFloats the largest grid of x, in values (a group holds at least one image; dy's grid is held to {@link DY_GROUP_FLOATS}).
 * @returns undefined where this route does not apply: a backend without a heap, a crop instead
 * of a pad, paddings that give more outputs than cells, or a grid over 1.3× the output (small
 * images, where the wasted cells cost more than the route saves).
 */
export function conv2dFilterGradByShifts(x: tf.Tensor4D, dy: tf.Tensor4D, [kh, kw]: readonly [number, number], top: number, left: number, groupFloats = GROUP_FLOATS): tf.Tensor4D | undefined {
  const backend = tf.backend() as HeapBackend;
  const matMul = tf.getKernel('BatchMatMul', tf.getBackend());
  if (typeof backend.typedArrayFromHeap !== 'function' || !matMul) return undefined;
  const [n, h, w, c] = x.shape;
  const [, oh, ow, co] = dy.shape;
  const [bottom, right] = [oh + kh - 1 - h - top, ow + kw - 1 - w - left];
  if (Math.min(top, bottom, left, right) < 0 || x.dtype !== 'float32' || dy.dtype !== 'float32') return undefined;
  const [hp, wp] = [h + Math.max(top, bottom), w + Math.max(left, right)];
  // Each output position needs a cell of its own (a padding of at least the filter size on both
  // sides gives more outputs than cells).
  if (oh > hp || ow > wp || hp * wp > 1.3 * oh * ow) return undefined;
  // Images go through in groups (see GROUP_FLOATS and DY_GROUP_FLOATS); each group's products are summed into dW.
  const group = Math.max(1, Math.min(n, Math.floor(groupFloats / (c * hp * wp)), Math.floor(DY_GROUP_FLOATS / (co * hp * wp))));
  const reach = (kh - 1) * wp + kw - 1;
  const maxCells = group * hp * wp;
  const grid = backend.makeOutput([c * maxCells + reach], 'float32');
  const out = backend.makeOutput([kh, kw, c, co], 'float32');
  // Where the backend cannot register a view of the grid, each tap's slice is copied here.
  let slice: tf.TensorInfo | undefined;
  try {
    for (let b0 = 0; b0 < n; b0 += group) {
      const images = Math.min(group, n - b0);
      const cells = images * hp * wp;
      // A group's own tensors, freed when the group is done (or fails).
      const groupTensors: tf.TensorInfo[] = [];
      try {
        // The last, smaller group gets a grid of its own size (a product reads its operands' shapes).
        const gridInfo = images === group ? grid : backend.makeOutput([c * cells + reach], 'float32');
        if (gridInfo !== grid) groupTensors.push(gridInfo);
        // dy's grid is new for every group: the backend caches the packing of a product's right
        // operand by tensor, so refilling one would reuse the first group's packing.
        const dyInfo = backend.makeOutput([cells, co], 'float32');
        groupTensors.push(dyInfo);
        {
          // Views after every makeOutput (a growing heap detaches earlier ones).
          const [src, g, dys, dyg] = [backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(gridInfo), backend.typedArrayFromHeap(dy), backend.typedArrayFromHeap(dyInfo)];
          g.fill(0);
          dyg.fill(0);
          for (let k = 0; k < images; k++) {
            const b = b0 + k;
            for (let r = 0; r < h; r++) {
              // The row's w × c block, transposed: channel ci of pixel (b, r, q) to ci·S + cell.
              transposeBlock(src, (b * h + r) * w * c, c, w, c, g, k * hp * wp + (r + top) * wp + left, cells);
            }
            for (let a = 0; a < oh; a++) dyg.set(dys.subarray((b * oh + a) * ow * co, (b * oh + a + 1) * ow * co), (k * hp * wp + a * wp) * co);
          }
        }
        for (let i = 0; i < kh; i++) {
          for (let j = 0; j < kw; j++) {
            const o = i * wp + j;
            const view = heapView(backend, gridInfo, o, [c, cells]);
            let a = view?.info;
            if (!a) {
              slice ??= backend.makeOutput([c, maxCells], 'float32');
              a = { ...slice, shape: [c, cells] };
              backend.typedArrayFromHeap(a).set(backend.typedArrayFromHeap(gridInfo).subarray(o, o + c * cells));
            }
            let product: tf.TensorInfo;
            try {
              product = matMul.kernelFunc({ inputs: { a, b: dyInfo }, backend, attrs: { transposeA: false, transposeB: false } }) as tf.TensorInfo;
            } finally {
              view?.release();
            }
            const [p, d] = [backend.typedArrayFromHeap(product), backend.typedArrayFromHeap(out)];
            const at = (i * kw + j) * c * co;
            if (b0 === 0) d.set(p, at);
            else for (let e = 0; e < p.length; e++) d[at + e] = d[at + e]! + p[e]!;
            backend.disposeData(product.dataId);
          }
        }
      } finally {
        for (const t of groupTensors) backend.disposeData(t.dataId);
      }
    }
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  } finally {
    backend.disposeData(grid.dataId);
    if (slice) backend.disposeData(slice.dataId);
  }
  return tf.engine().makeTensorFromTensorInfo(out, backend) as tf.Tensor4D;
}

/**
 * dW of a 2D convolution as one forward convolution with batch and channels swapped:
 *
 *   dW[i, j, c, o] = Σ_{n,a,b} xpad[n, i + s·a, j + s·b, c] · dy[n, a, b, o]
 *
 * is the convolution of xpad viewed as [Ci, Hp, Wp, N] (Ci images of N channels) with dy viewed
 * as a filter [OH, OW, N, Co], dilated by the stride, giving [Ci, kh, kw, Co]. XNNPACK runs it
 * as an indirect GEMM, without materialising patches (measured 2 to 5× faster than one matrix
 * product per tap on transposed, copied patches). Used where the flat shifts above do not apply.
 */
export function conv2dFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: [number, number, number, number], attrs: ConvAttrs): tf.Tensor4D {
  const [kh, kw, , co] = filterShape;
  const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const [b, oh, ow] = [info.batchSize, info.outHeight, info.outWidth];
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  const { top, left } = info.padInfo;
  if (dy.shape[1] !== oh || dy.shape[2] !== ow || dy.shape[3] !== co) {
    throw new Error(`Conv2DBackpropFilter: dy has shape [${dy.shape.join(', ')}], expected [${b}, ${oh}, ${ow}, ${co}]`);
  }
  if (sh === 1 && sw === 1) {
    const shifted = conv2dFilterGradByShifts(x, dy, [kh, kw], top, left);
    if (shifted) return shifted;
  }
  // The padded extent every tap of every output reads (tfjs sizes the output of a numeric padding
  // from the filter's height alone, so a non-square filter may reach past the stated padding; the
  // backends read zeros there, and so does this). Rows or columns no tap reads are cropped.
  const hp = (oh - 1) * sh + kh;
  const wp = (ow - 1) * sw + kw;
  return tf.tidy(() => {
    const [padTop, padBottom, padLeft, padRight] = [top, hp - x.shape[1] - top, left, wp - x.shape[2] - left];
    // Crops before the transpose; zero padding inside the convolution (no padded copy).
    const cropped = padOrCrop(x, [Math.min(0, padTop), Math.min(0, padBottom)], [Math.min(0, padLeft), Math.min(0, padRight)]);
    const images = tf.transpose(cropped, [3, 1, 2, 0]) as tf.Tensor4D;
    const filter = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
    const grad = convPadded(images, filter, [Math.max(0, padTop), Math.max(0, padBottom)], [Math.max(0, padLeft), Math.max(0, padRight)], [sh, sw]);
    return tf.transpose(grad, [1, 2, 0, 3]) as tf.Tensor4D;
  });
}

function convInputGradKernel(original: Original): tf.KernelFunc {
  return (args) => {
    const attrs = args.attrs as unknown as ConvAttrs & { inputShape: [number, number, number, number] };
    if (attrs.dataFormat !== 'NHWC') return original!.kernelFunc(args);
    return withTensors(args.inputs, args.backend as tf.KernelBackend, ['dy', 'filter'], (dy, filter) => conv2dInputGradByPhases(dy as tf.Tensor4D, filter as tf.Tensor4D, attrs.inputShape, attrs));
  };
}

function convFilterGradKernel(original: Original): tf.KernelFunc {
  return (args) => {
    const attrs = args.attrs as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
    if (attrs.dataFormat !== 'NHWC') {
      if (original) return original.kernelFunc(args);
      throw new Error(`Conv2DBackpropFilter: only NHWC is supported, got ${attrs.dataFormat}`);
    }
    return withTensors(args.inputs, args.backend as tf.KernelBackend, ['x', 'dy'], (x, dy) => conv2dFilterGrad(x as tf.Tensor4D, dy as tf.Tensor4D, attrs.filterShape, attrs));
  };
}

// ---------------------------------------------------------------------------------------------

const FAST: ReadonlyArray<readonly [string, (original: Original) => tf.KernelFunc]> = [
  ['Identity', () => identityKernel],
  ['Transpose', transposeKernel],
  ['BatchMatMul', batchMatMulKernel],
  ['_FusedMatMul', fusedMatMulKernel],
  ['Sum', (o) => leadingReduceKernel(o, false)],
  ['Mean', (o) => leadingReduceKernel(o, true)],
  ['Conv2DBackpropInput', convInputGradKernel],
  ['Conv2DBackpropFilter', convFilterGradKernel],
];

const installed = new Set<string>();

/**
 * Puts the kernels above in place of (or, for Conv2DBackpropFilter, beside) the backend's own.
 * Idempotent per backend.
 * @returns the names of the kernels it replaced or supplied.
 */
export function registerFastKernels(backendName: string): string[] {
  const supplied = registerShiftStack(backendName);
  if (installed.has(backendName)) return [...FAST.map(([name]) => name), ...supplied];
  for (const [name, make] of FAST) {
    const original = tf.getKernel(name, backendName);
    if (!original && name !== 'Conv2DBackpropFilter') continue;
    if (original) tf.unregisterKernel(name, backendName);
    tf.registerKernel({ kernelName: name, backendName, kernelFunc: make(original), ...(original?.setupFunc ? { setupFunc: original.setupFunc } : {}) });
  }
  installed.add(backendName);
  return [...FAST.map(([name]) => name), ...supplied];
}

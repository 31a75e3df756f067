/**
 * `Transpose` on wasm as copies in JS for the permutations training uses once adjacent axes are
 * merged ([1,0], [0,2,1], [2,1,0], [1,0,2]); other permutations go to the backend's own kernel.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type Original, type HeapBackend } from './kernel-util.ts';
import { reducedPermutation } from '../shape.ts';


/**
 * Transpose of a rows × cols block: element (i, j) at `src[from + i·srcStride + j]` goes to
 * `dst[to + j·dstStride + i]`. Four source columns per pass over a band of rows, each written as
 * a run of its destination row (the band's source lines stay in cache for the next four columns):
 * measured 2 – 3× a 16 × 16 blocked loop ([32, 1024, 256] → [32, 256, 1024]: 594 against 200 M
 * values/s; [32768, 64]: 435 against 194).
 */
export function transposeBlock(src: ArrayLike<number>, from: number, srcStride: number, rows: number, cols: number, dst: { [i: number]: number }, to: number, dstStride: number): void {
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

export function transposeKernel(original: Original): tf.KernelFunc {
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


/**
 * `Conv2DBackpropFilter`, which the wasm backend lacks: at stride 1 one native product per filter
 * tap where a native library is loaded (conv-blas.ts), else one XNNPACK product per tap over a
 * padded, channel-major copy of x read in place ("flat shifts"); at other strides one forward
 * convolution with batch and channels swapped.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type Original, withTensors, type HeapBackend } from './kernel-util.ts';
import { type ConvAttrs, padOrCrop, convPadded } from './conv-util.ts';
import { transposeBlock } from './transpose.ts';
import type { Blas } from './blas.ts';
import { conv2dFilterGradByTaps } from './conv-blas.ts';

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
 * Copying x onto the grid is a blocked transpose ({@link transposeBlock}, four channels per pass:
 * 128 ms of a 4.1 s iteration, against 269 ms for a 16 × 16 blocked loop).
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
export function conv2dFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: [number, number, number, number], attrs: ConvAttrs, blas?: Blas): tf.Tensor4D {
  const [kh, kw, , co] = filterShape;
  const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const [b, oh, ow] = [info.batchSize, info.outHeight, info.outWidth];
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  const { top, left } = info.padInfo;
  if (dy.shape[1] !== oh || dy.shape[2] !== ow || dy.shape[3] !== co) {
    throw new Error(`Conv2DBackpropFilter: dy has shape [${dy.shape.join(', ')}], expected [${b}, ${oh}, ${ow}, ${co}]`);
  }
  if (sh === 1 && sw === 1 && blas && x.dtype === 'float32' && dy.dtype === 'float32') {
    const backend = tf.backend() as HeapBackend;
    const native = typeof backend.typedArrayFromHeap === 'function' ? conv2dFilterGradByTaps(backend, blas, x, dy, [kh, kw], top, left) : undefined;
    if (native) return tf.engine().makeTensorFromTensorInfo(native, backend) as tf.Tensor4D;
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

export function convFilterGradKernel(original: Original, blas?: Blas): tf.KernelFunc {
  return (args) => {
    const attrs = args.attrs as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
    if (attrs.dataFormat !== 'NHWC') {
      if (original) return original.kernelFunc(args);
      throw new Error(`Conv2DBackpropFilter: only NHWC is supported, got ${attrs.dataFormat}`);
    }
    return withTensors(args.inputs, args.backend as tf.KernelBackend, ['x', 'dy'], (x, dy) => conv2dFilterGrad(x as tf.Tensor4D, dy as tf.Tensor4D, attrs.filterShape, attrs, blas));
  };
}

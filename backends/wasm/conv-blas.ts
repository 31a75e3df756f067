/**
 * Stride-1 2D convolutions and their filter gradients as native matrix products (blas.ts), one
 * per filter tap, on a zero-padded copy of x read in place: no patches are materialised.
 *
 * x goes onto a grid of N·Hp·Wp cells of C values (NHWC order, Hp = H + max(top, bottom),
 * Wp = W + max(left, right)): one zero band serves as the bottom (right) padding of an image
 * (row) and the top (left) padding of the next, so that output position (a, b) of an image sits
 * at cell a·Wp + b of that image and tap (i, j) reads the cell o = i·Wp + j further on. With the
 * grid as a row-major [cells, C] matrix G, its rows o, o + 1, … form a [cells, C] matrix G_o
 * read in place (a view at offset o·C, row stride C), and
 *
 *   Y = Σ_taps G_o · W[i, j]          (forward: [cells, C] · [C, Co], accumulated by beta = 1)
 *   dW[i, j] = G_oᵀ · dY_grid         (filter gradient: [C, cells] · [cells, Co])
 *
 * where Y holds the output at the cells of output positions (the rest is discarded) and dY_grid
 * holds dy at those cells and zeros elsewhere. A view that runs past an image reads the next
 * image's top padding (zeros), and past the grid a tail of `reach` zero cells. Cells that are
 * not output positions cost (Hp·Wp) / (OH·OW) more arithmetic: 1.06× on a 32 × 32 image with
 * padding 1.
 *
 * The forward products run over a whole group's cells: blocks of 256 to 8192 rows, all taps of a
 * block before the next (to keep the block's Y in cache), measured alike (75 – 76 GFLOP/s on the
 * demo's largest layer, [32, 32, 32, 192] → 64, one thread), so OpenBLAS does its own blocking.
 * In a metered iteration of the demo preset (one thread), that layer's forward convolution took
 * 100 ms (73 GFLOP/s) against 282 ms (26 GFLOP/s) on XNNPACK, its filter gradient 114 against 329
 * ms; the smallest inputs gain least (4 → 64 channels: 29 GFLOP/s, the products' K being 4).
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Blas } from './blas.ts';
import type { HeapBackend } from './kernel-util.ts';

/** Largest grid of x (and of y or dy) per group of images, in values (4 Mi values, 16 MiB). */
const GROUP_FLOATS = 1 << 22;

/** How the routes cut their work (tests make it small to cross every boundary). */
export interface Cuts {
  /** Largest grid per group of images, in values. */
  readonly groupFloats?: number;
}

export interface Padding {
  readonly top: number;
  readonly bottom: number;
  readonly left: number;
  readonly right: number;
}

/** The grid of a stride-1 convolution of x [n, h, w, c] by a [kh, kw] filter with `pad`. */
interface Grid {
  readonly oh: number;
  readonly ow: number;
  readonly hp: number;
  readonly wp: number;
  /** Cells per image. */
  readonly plane: number;
  /** Zero cells after the last image, so that every tap's view stays inside the grid. */
  readonly reach: number;
  /** Images per group. */
  readonly group: number;
}

/**
 * @returns undefined where the grid cannot hold every output position in a cell of its own
 * (a padding on both sides of at least the filter's size) or there is no output.
 */
function gridOf([n, h, w, c]: readonly number[], [kh, kw]: readonly number[], pad: Padding, co: number, groupFloats: number): Grid | undefined {
  const oh = h! + pad.top + pad.bottom - kh! + 1;
  const ow = w! + pad.left + pad.right - kw! + 1;
  if (Math.min(pad.top, pad.bottom, pad.left, pad.right) < 0 || oh <= 0 || ow <= 0) return undefined;
  const hp = h! + Math.max(pad.top, pad.bottom);
  const wp = w! + Math.max(pad.left, pad.right);
  if (oh > hp || ow > wp) return undefined;
  const plane = hp * wp;
  const group = Math.max(1, Math.min(n!, Math.floor(groupFloats / (plane * Math.max(c!, co)))));
  return { oh, ow, hp, wp, plane, reach: (kh! - 1) * wp + kw! - 1, group };
}

/**
 * Runs `fill`, which writes `out`; frees the `scratch` buffers whatever happens, and `out` too
 * when `fill` throws.
 */
function filled(backend: HeapBackend, out: tf.TensorInfo, scratch: readonly tf.TensorInfo[], fill: () => void): tf.TensorInfo {
  try {
    fill();
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  } finally {
    for (const t of scratch) backend.disposeData(t.dataId);
  }
  return out;
}

/** Copies images b0 … b0 + images − 1 of x onto the zeroed grid `g`. */
function fillGrid(g: Float32Array, xs: Float32Array, [, h, w, c]: readonly number[], grid: Grid, pad: Padding, b0: number, images: number): void {
  g.fill(0, 0, (images * grid.plane + grid.reach) * c!);
  const row = w! * c!;
  for (let k = 0; k < images; k++) {
    for (let r = 0; r < h!; r++) {
      const from = ((b0 + k) * h! + r) * row;
      g.set(xs.subarray(from, from + row), (k * grid.plane + (r + pad.top) * grid.wp + pad.left) * c!);
    }
  }
}

/**
 * y = conv2d(x, filter), stride 1, dilation 1, zero padding `pad`, NHWC, float32, as one native
 * product per tap and group of images.
 * @returns the output, or undefined where the grid does not apply (see {@link gridOf}).
 */
export function conv2dByTaps(backend: HeapBackend, blas: Blas, x: tf.TensorInfo, filter: tf.TensorInfo, pad: Padding, { groupFloats = GROUP_FLOATS }: Cuts = {}): tf.TensorInfo | undefined {
  const [n, , , c] = x.shape as [number, number, number, number];
  const [kh, kw, , co] = filter.shape as [number, number, number, number];
  const grid = gridOf(x.shape, [kh, kw], pad, co, groupFloats);
  if (!grid) return undefined;
  const { oh, ow, plane, group } = grid;
  const out = backend.makeOutput([n, oh, ow, co], 'float32');
  if (n === 0) return out;
  const gridInfo = backend.makeOutput([(group * plane + grid.reach) * c], 'float32');
  const yInfo = backend.makeOutput([group * plane * co], 'float32');
  return filled(backend, out, [gridInfo, yInfo], () => {
    // Views after the last makeOutput (a growing heap detaches earlier ones).
    const [xs, f, g, y, o] = [x, filter, gridInfo, yInfo, out].map((t) => backend.typedArrayFromHeap(t) as Float32Array) as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
    for (let b0 = 0; b0 < n; b0 += group) {
      const images = Math.min(group, n - b0);
      const cells = images * plane;
      fillGrid(g, xs, x.shape, grid, pad, b0, images);
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const tap = i * kw + j;
          blas.gemm(false, false, cells, co, c, g.subarray((i * grid.wp + j) * c), c, f.subarray(tap * c * co), co, tap === 0 ? 0 : 1, y, co);
        }
      }
      const row = ow * co;
      for (let k = 0; k < images; k++) {
        for (let a = 0; a < oh; a++) {
          const from = (k * plane + a * grid.wp) * co;
          o.set(y.subarray(from, from + row), ((b0 + k) * oh + a) * row);
        }
      }
    }
  });
}

/**
 * dW [kh, kw, c, co] of y = conv2d(x, W) at stride 1, dilation 1, zero padding `pad` (its
 * top and left; the bottom and right follow from dy's size), NHWC, float32: one native product
 * per tap and group of images, summed over the groups.
 * @returns undefined where the grid does not apply (see {@link gridOf}).
 */
export function conv2dFilterGradByTaps(backend: HeapBackend, blas: Blas, x: tf.TensorInfo, dy: tf.TensorInfo, [kh, kw]: readonly [number, number], top: number, left: number, { groupFloats = GROUP_FLOATS }: Cuts = {}): tf.TensorInfo | undefined {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const [, oh, ow, co] = dy.shape as [number, number, number, number];
  const pad = { top, left, bottom: oh + kh - 1 - h - top, right: ow + kw - 1 - w - left };
  const grid = gridOf(x.shape, [kh, kw], pad, co, groupFloats);
  if (!grid || grid.oh !== oh || grid.ow !== ow) return undefined;
  const { plane, group } = grid;
  const out = backend.makeOutput([kh, kw, c, co], 'float32');
  const gridInfo = backend.makeOutput([(group * plane + grid.reach) * c], 'float32');
  const dyInfo = backend.makeOutput([group * plane * co], 'float32');
  return filled(backend, out, [gridInfo, dyInfo], () => {
    const [xs, dys, g, dyg, dw] = [x, dy, gridInfo, dyInfo, out].map((t) => backend.typedArrayFromHeap(t) as Float32Array) as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
    if (n === 0) dw.fill(0);
    for (let b0 = 0; b0 < n; b0 += group) {
      const images = Math.min(group, n - b0);
      const cells = images * plane;
      fillGrid(g, xs, x.shape, grid, pad, b0, images);
      dyg.fill(0, 0, cells * co);
      const row = ow * co;
      for (let k = 0; k < images; k++) {
        for (let a = 0; a < oh; a++) {
          const from = ((b0 + k) * oh + a) * row;
          dyg.set(dys.subarray(from, from + row), (k * plane + a * grid.wp) * co);
        }
      }
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const tap = i * kw + j;
          blas.gemm(true, false, c, co, cells, g.subarray((i * grid.wp + j) * c), c, dyg, co, b0 === 0 ? 0 : 1, dw.subarray(tap * c * co), co);
        }
      }
    }
  });
}

/**
 * `Conv2D` on wasm with a native library: stride 1, dilation 1, NHWC, float32 by
 * {@link conv2dByTaps}; anything else, and paddings the grid cannot hold, on the backend's own kernel.
 */
export function conv2dKernel(original: tf.KernelConfig, blas: Blas): tf.KernelFunc {
  return (args) => {
    const { x, filter } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
    const attrs = args.attrs as { strides: number | [number, number]; pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding; dataFormat: 'NHWC' | 'NCHW'; dilations: number | [number, number]; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
    if (attrs.dataFormat === 'NHWC' && x.dtype === 'float32' && filter.dtype === 'float32' && x.shape.length === 4) {
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], attrs.strides, attrs.dilations, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
      const { top, bottom, left, right } = info.padInfo;
      const sized = info.outHeight === x.shape[1]! + top + bottom - info.filterHeight + 1 && info.outWidth === x.shape[2]! + left + right - info.filterWidth + 1;
      if (sized && info.strideHeight === 1 && info.strideWidth === 1 && info.dilationHeight === 1 && info.dilationWidth === 1) {
        const y = conv2dByTaps(args.backend as HeapBackend, blas, x, filter, info.padInfo);
        if (y) return y;
      }
    }
    return original.kernelFunc(args) as tf.TensorInfo;
  };
}

/**
 * `Conv2DBackpropInput` on wasm: one forward convolution per stride phase with the flipped
 * filter's taps of that phase, the phases interleaved in one heap pass.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type Original, withTensors, type HeapBackend } from './kernel-util.ts';
import { type ConvAttrs, padOrCrop, convPadded } from './conv-util.ts';
import { transposeBlock } from './transpose.ts';

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


export function convInputGradKernel(original: Original): tf.KernelFunc {
  return (args) => {
    const attrs = args.attrs as unknown as ConvAttrs & { inputShape: [number, number, number, number] };
    if (attrs.dataFormat !== 'NHWC') return original!.kernelFunc(args);
    return withTensors(args.inputs, args.backend as tf.KernelBackend, ['dy', 'filter'], (dy, filter) => conv2dInputGradByPhases(dy as tf.Tensor4D, filter as tf.Tensor4D, attrs.inputShape, attrs));
  };
}

/**
 * What the convolution-gradient kernels share: their attributes, and padding or cropping NHWC
 * tensors before a forward convolution.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** Pads (positive) or crops (negative) axes 1 and 2 of an NHWC tensor. */
export function padOrCrop(x: tf.Tensor4D, [top, bottom]: [number, number], [left, right]: [number, number]): tf.Tensor4D {
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
export function convPadded(x: tf.Tensor4D, filter: tf.Tensor4D, [top, bottom]: [number, number], [left, right]: [number, number], dilations: [number, number] = [1, 1]): tf.Tensor4D {
  const cropped = padOrCrop(x, [Math.min(0, top), Math.min(0, bottom)], [Math.min(0, left), Math.min(0, right)]);
  const pad: tf.backend_util.ExplicitPadding = [[0, 0], [Math.max(0, top), Math.max(0, bottom)], [Math.max(0, left), Math.max(0, right)], [0, 0]];
  return tf.conv2d(cropped, filter, 1, pad, 'NHWC', dilations);
}

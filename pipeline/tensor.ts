/**
 * From a frame batch to tensors. Float32 pixels go to the backend as a view of the batch's own
 * buffer: backends that keep JavaScript arrays (cpu) hold that very memory, with no copy; backends
 * with their own memory (wasm, WebGL, TensorFlow) make the one upload they always make. Uint8
 * pixels are scaled to [-1, 1] in one pass, since tensors have no uint8 type.
 *
 * Imports tfjs-core only; which backend runs is chosen elsewhere.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RecordBatch } from 'apache-arrow';
import { frameBatchSpec, framesOf, masksOf } from './frame-batch.ts';

/** Pixels as a float32 tensor [B, T, H, W, C] in the model's range [-1, 1]. */
export function framesTensor(batch: RecordBatch): tf.Tensor5D {
  const spec = frameBatchSpec(batch.schema);
  const { shape, pixelType, range } = spec;
  const dims: [number, number, number, number, number] = [batch.numRows, shape.frames, shape.height, shape.width, shape.channels];
  const pixels = framesOf(batch, spec);
  if (pixelType === 'float32' && range[0] === -1 && range[1] === 1) return tf.tensor5d(pixels as Float32Array, dims, 'float32');
  const [lo, hi] = range;
  const scale = 2 / (hi - lo);
  const scaled = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) scaled[i] = (pixels[i]! - lo) * scale - 1;
  return tf.tensor5d(scaled, dims, 'float32');
}

/** Masks as a float32 tensor [B, T, H, W, 1], 1 = visible. */
export function maskTensor(batch: RecordBatch): tf.Tensor5D {
  const spec = frameBatchSpec(batch.schema);
  const { shape } = spec;
  return tf.tensor5d(Float32Array.from(masksOf(batch, spec)), [batch.numRows, shape.frames, shape.height, shape.width, 1], 'float32');
}

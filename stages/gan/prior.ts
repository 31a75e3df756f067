/**
 * Temporal linear interpolation of observed clips as tensor operations (the `interpolation`
 * baseline of stages/eval/baselines.ts, for any backend and inside a training step): each hidden
 * pixel takes the line between its nearest visible frames before and after, the nearest visible
 * frame's value at either end, and the clip's visible mean per channel where it is never visible.
 * Uses only the observation and its mask, never clean data.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * @param y observed clips [B, T, H, W, C]
 * @param m masks [B, T, H, W, 1], 1 = visible
 * @returns [B, T, H, W, C]: visible pixels as observed, hidden ones interpolated in time.
 */
export function temporalInterpolation(y: tf.Tensor5D, m: tf.Tensor5D): tf.Tensor5D {
  return tf.tidy(() => {
    const T = y.shape[1];
    const frames = tf.unstack(y, 1);
    const masks = tf.unstack(m, 1).map((f) => tf.cast(tf.greater(f, 0.5), 'bool'));
    const channels = y.shape[4];
    const visibleCount = tf.sum(m, [1, 2, 3], true);
    const mean = tf.div(tf.sum(tf.mul(y, m), [1, 2, 3], true), tf.maximum(visibleCount, 1)).squeeze([1]) as tf.Tensor4D; // [B, 1, 1, C]
    // The last visible value and its frame, scanning forwards; the next ones, scanning backwards.
    const none = tf.fill(masks[0]!.shape, -1);
    const before: Array<{ value: tf.Tensor; at: tf.Tensor }> = [];
    let value: tf.Tensor = tf.zerosLike(frames[0]!);
    let at: tf.Tensor = none;
    for (let t = 0; t < T; t++) {
      const seen = tf.tile(masks[t]!, [1, 1, 1, channels]);
      value = tf.where(seen, frames[t]!, value);
      at = tf.where(masks[t]!, tf.fill(masks[t]!.shape, t), at);
      before.push({ value, at });
    }
    const after: Array<{ value: tf.Tensor; at: tf.Tensor }> = new Array(T);
    value = tf.zerosLike(frames[0]!);
    at = none;
    for (let t = T - 1; t >= 0; t--) {
      const seen = tf.tile(masks[t]!, [1, 1, 1, channels]);
      value = tf.where(seen, frames[t]!, value);
      at = tf.where(masks[t]!, tf.fill(masks[t]!.shape, t), at);
      after[t] = { value, at };
    }
    const out = frames.map((frame, t) => {
      const p = before[t]!;
      const n = after[t]!;
      const hasP = tf.tile(tf.greaterEqual(p.at, 0), [1, 1, 1, channels]);
      const hasN = tf.tile(tf.greaterEqual(n.at, 0), [1, 1, 1, channels]);
      const span = tf.maximum(tf.sub(n.at, p.at), 1);
      const w = tf.div(tf.sub(t, p.at), span);
      const line = tf.add(p.value, tf.mul(w, tf.sub(n.value, p.value)));
      const filled = tf.where(tf.logicalAnd(hasP, hasN), line, tf.where(hasP, p.value, tf.where(hasN, n.value, tf.broadcastTo(mean, frame.shape))));
      return tf.where(tf.tile(masks[t]!, [1, 1, 1, channels]), frame, filled);
    });
    return tf.stack(out, 1) as tf.Tensor5D;
  });
}

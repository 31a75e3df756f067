/**
 * `shiftStack`: the copies of a sequence shifted in time, stacked along channels. It is how a 3D
 * convolution with temporal stride 1 becomes one 2D convolution (the taps of the time axis
 * become input channels):
 *
 *   out[b, t, f, k·C + c] = x[b, t + k − p, f, c]   (zero where t + k − p is outside 0 … T − 1)
 *
 * for x [B, T, F, C], `taps` copies k = 0 … taps − 1 and p = ⌊taps / 2⌋. Its gradient sums the
 * shifted blocks back: dx[b, t, f, c] = Σₖ dy[b, t − k + p, f, k·C + c].
 *
 * It is an op of its own, `ShiftStack`, with its gradient `ShiftStackGrad` registered here. A
 * backend may supply kernels for both (wasm does, one pass over its heap each way:
 * backends/wasm/shift-stack.ts); elsewhere the op is composed of pad, slice and concat, whose
 * gradients tfjs already knows. Both give the same numbers (tested against each other), so the
 * layers call `shiftStack` without knowing which ran. Composed on wasm, the forward pass (a pad,
 * `taps` slices and a concat) and its gradient (a strided split, pads, slices and a sum) take
 * about 0.7 s of a 4.8 s training iteration at the demo size.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The kernel names a backend registers to supply the op. */
export const SHIFT_STACK = 'ShiftStack';
export const SHIFT_STACK_GRAD = 'ShiftStackGrad';

/**
 * Shifted copies of `x` [B, T, F, C] stacked along channels, tap-major: [B, T, F, taps·C].
 * @throws Error for an even or non-positive number of taps.
 */
export function shiftStack(x: tf.Tensor4D, taps: number): tf.Tensor4D {
  if (!Number.isInteger(taps) || taps < 1 || taps % 2 === 0) throw new Error(`shiftStack: taps must be a positive odd integer, got ${taps}`);
  if (taps === 1) return x;
  if (x.dtype === 'float32' && tf.getKernel(SHIFT_STACK, tf.getBackend())) {
    return tf.engine().runKernel(SHIFT_STACK, { x }, { taps }) as tf.Tensor4D;
  }
  return composed(x, taps);
}

/** The same from pad, slice and concat (any backend, any dtype). */
function composed(x: tf.Tensor4D, taps: number): tf.Tensor4D {
  const [b, t, f, c] = x.shape;
  const p = Math.floor(taps / 2);
  return tf.tidy(() => {
    // On rank-3 and rank-2 views: the wasm backend's slice and concat are slow on higher ranks.
    const padded = tf.pad(tf.reshape(x, [b, t, f * c]), [[0, 0], [p, p], [0, 0]]);
    const shifted: tf.Tensor[] = [];
    for (let k = 0; k < taps; k++) shifted.push(tf.reshape(tf.slice(padded, [0, k, 0], [b, t, f * c]), [b * t * f, c]));
    return tf.reshape(tf.concat(shifted, 1), [b, t, f, taps * c]);
  });
}

tf.registerGradient({
  kernelName: SHIFT_STACK,
  gradFunc: (dy, _saved, attrs) => ({ x: () => tf.engine().runKernel(SHIFT_STACK_GRAD, { dy: dy as tf.Tensor }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor }),
});

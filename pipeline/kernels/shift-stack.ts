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
 * On a backend with the `ShiftStack` kernels (wasm, registered by `registerShiftStack`), each
 * direction is one pass over the heap. Elsewhere it is composed of pad, slice and concat, whose
 * gradients tfjs already knows. Both give the same numbers (tested against each other), so model
 * code calls `shiftStack` without knowing which ran. Composed, the forward pass was a pad, `taps`
 * slices and a concat, and the gradient a split, `taps` pads and slices and their sum: on wasm
 * about 0.7 s of a 4.8 s training iteration at the demo size, the concat's gradient (a strided
 * split) the slowest part.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';

const FORWARD = 'ShiftStack';
const BACKWARD = 'ShiftStackGrad';

/** The backend's heap-facing methods the kernels use (the wasm backend has them). */
interface HeapBackend extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/**
 * Shifted copies of `x` [B, T, F, C] stacked along channels, tap-major: [B, T, F, taps·C].
 * @throws Error for an even or non-positive number of taps.
 */
export function shiftStack(x: tf.Tensor4D, taps: number): tf.Tensor4D {
  if (!Number.isInteger(taps) || taps < 1 || taps % 2 === 0) throw new Error(`shiftStack: taps must be a positive odd integer, got ${taps}`);
  if (taps === 1) return x;
  if (x.dtype === 'float32' && tf.getKernel(FORWARD, tf.getBackend())) {
    return tf.engine().runKernel(FORWARD, { x }, { taps }) as tf.Tensor4D;
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

/** out[b, t, f, k·C + c] = x[b, t + k − p, f, c], zeros outside. */
export function shiftStackInto(x: Float32Array, shape: readonly number[], taps: number, out: Float32Array): void {
  const [b, t, f, c] = shape as [number, number, number, number];
  const p = Math.floor(taps / 2);
  const width = taps * c;
  for (let bi = 0; bi < b; bi++) {
    for (let ti = 0; ti < t; ti++) {
      const row0 = (bi * t + ti) * f;
      for (let k = 0; k < taps; k++) {
        const ts = ti + k - p;
        if (ts < 0 || ts >= t) {
          for (let fi = 0; fi < f; fi++) {
            const o = (row0 + fi) * width + k * c;
            for (let ci = 0; ci < c; ci++) out[o + ci] = 0;
          }
          continue;
        }
        const src0 = (bi * t + ts) * f * c;
        if (c === 1) {
          for (let fi = 0; fi < f; fi++) out[(row0 + fi) * width + k] = x[src0 + fi]!;
        } else {
          for (let fi = 0; fi < f; fi++) {
            const o = (row0 + fi) * width + k * c;
            const s = src0 + fi * c;
            for (let ci = 0; ci < c; ci++) out[o + ci] = x[s + ci]!;
          }
        }
      }
    }
  }
}

/** dx[b, t, f, c] = Σₖ dy[b, t − k + p, f, k·C + c] over the k that reach a valid t − k + p. */
export function shiftStackGradInto(dy: Float32Array, shape: readonly number[], taps: number, dx: Float32Array): void {
  const [b, t, f, c] = shape as [number, number, number, number];
  const p = Math.floor(taps / 2);
  const width = taps * c;
  dx.fill(0);
  for (let bi = 0; bi < b; bi++) {
    for (let to = 0; to < t; to++) {
      const row0 = (bi * t + to) * f;
      for (let k = 0; k < taps; k++) {
        const ti = to + k - p;
        if (ti < 0 || ti >= t) continue;
        const dst0 = (bi * t + ti) * f * c;
        if (c === 1) {
          for (let fi = 0; fi < f; fi++) dx[dst0 + fi] = dx[dst0 + fi]! + dy[(row0 + fi) * width + k]!;
        } else {
          for (let fi = 0; fi < f; fi++) {
            const s = (row0 + fi) * width + k * c;
            const d = dst0 + fi * c;
            for (let ci = 0; ci < c; ci++) dx[d + ci] = dx[d + ci]! + dy[s + ci]!;
          }
        }
      }
    }
  }
}

const forwardKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const heap = backend as HeapBackend;
  const x = inputs['x']!;
  const taps = (attrs as { taps: number }).taps;
  const [b, t, f, c] = x.shape as [number, number, number, number];
  // makeOutput may grow the heap, which detaches views taken before it: take them after.
  const out = heap.makeOutput([b, t, f, taps * c], 'float32');
  shiftStackInto(heap.typedArrayFromHeap(x) as Float32Array, x.shape, taps, heap.typedArrayFromHeap(out) as Float32Array);
  return out;
};

const backwardKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const heap = backend as HeapBackend;
  const dy = inputs['dy']!;
  const taps = (attrs as { taps: number }).taps;
  const [b, t, f, width] = dy.shape as [number, number, number, number];
  const shape = [b, t, f, width / taps];
  const dx = heap.makeOutput(shape, 'float32');
  shiftStackGradInto(heap.typedArrayFromHeap(dy) as Float32Array, shape, taps, heap.typedArrayFromHeap(dx) as Float32Array);
  return dx;
};

let gradientRegistered = false;

/**
 * Registers the one-pass kernels for a backend whose tensors live in a heap it exposes (wasm),
 * and the gradient that connects them (once, for all backends).
 * @returns the kernel names registered.
 */
export function registerShiftStack(backendName: string): string[] {
  for (const [kernelName, kernelFunc] of [[FORWARD, forwardKernel], [BACKWARD, backwardKernel]] as const) {
    if (!tf.getKernel(kernelName, backendName)) tf.registerKernel({ kernelName, backendName, kernelFunc });
  }
  if (!gradientRegistered) {
    tf.registerGradient({
      kernelName: FORWARD,
      gradFunc: (dy, _saved, attrs) => ({ x: () => tf.engine().runKernel(BACKWARD, { dy: dy as tf.Tensor }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor }),
    });
    gradientRegistered = true;
  }
  return [FORWARD, BACKWARD];
}

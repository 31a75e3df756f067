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

/** The backend's heap-facing methods that kernels written in JS use (the wasm backend has them). */
export interface HeapBackend extends tf.KernelBackend {
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

/** Runs of at least this many values are moved by `copyWithin` (a memmove); shorter ones by a loop. */
const MEMMOVE_FROM = 16;

/**
 * out[b, t, f, k·C + c] = x[b, t + k − p, f, c], zeros outside; x and out are regions of one
 * array (the heap) starting at `x0` and `out0`, so that runs move by `copyWithin` (measured for
 * [4, 8, 1024, C], 3 taps: 600 – 940 M values/s at C = 16 – 32 against 390 – 400 by a loop; at
 * C = 4 the loop is faster, 230 against 90).
 */
export function shiftStackInto(heap: Float32Array, x0: number, shape: readonly number[], taps: number, out0: number): void {
  const [b, t, f, c] = shape as [number, number, number, number];
  const p = Math.floor(taps / 2);
  const width = taps * c;
  for (let bi = 0; bi < b; bi++) {
    for (let ti = 0; ti < t; ti++) {
      const row0 = out0 + (bi * t + ti) * f * width;
      for (let k = 0; k < taps; k++) {
        const ts = ti + k - p;
        const inside = ts >= 0 && ts < t;
        const src0 = x0 + (bi * t + ts) * f * c;
        for (let fi = 0; fi < f; fi++) {
          const o = row0 + fi * width + k * c;
          if (!inside) heap.fill(0, o, o + c);
          else if (c >= MEMMOVE_FROM) heap.copyWithin(o, src0 + fi * c, src0 + (fi + 1) * c);
          else for (let ci = 0; ci < c; ci++) heap[o + ci] = heap[src0 + fi * c + ci]!;
        }
      }
    }
  }
}

/**
 * dx[b, t, f, c] = Σₖ dy[b, t − k + p, f, k·C + c] over the k that reach a valid t − k + p, with
 * dy and dx regions of one array as above: the first term of each frame is copied, the others added.
 */
export function shiftStackGradInto(heap: Float32Array, dy0: number, shape: readonly number[], taps: number, dx0: number): void {
  const [b, t, f, c] = shape as [number, number, number, number];
  const p = Math.floor(taps / 2);
  const width = taps * c;
  for (let bi = 0; bi < b; bi++) {
    for (let ti = 0; ti < t; ti++) {
      const dst0 = dx0 + (bi * t + ti) * f * c;
      let first = true;
      for (let k = 0; k < taps; k++) {
        const to = ti - k + p;
        if (to < 0 || to >= t) continue;
        const row0 = dy0 + (bi * t + to) * f * width + k * c;
        for (let fi = 0; fi < f; fi++) {
          const s = row0 + fi * width;
          const d = dst0 + fi * c;
          if (first && c >= MEMMOVE_FROM) heap.copyWithin(d, s, s + c);
          else if (first) for (let ci = 0; ci < c; ci++) heap[d + ci] = heap[s + ci]!;
          else for (let ci = 0; ci < c; ci++) heap[d + ci] = heap[d + ci]! + heap[s + ci]!;
        }
        first = false;
      }
      if (first) heap.fill(0, dst0, dst0 + f * c);
    }
  }
}

/** The whole heap as one float32 array, and where `info`'s data starts in it. */
function heapAt(backend: HeapBackend, info: tf.TensorInfo): { heap: Float32Array; at: number } {
  const view = backend.typedArrayFromHeap(info);
  return { heap: new Float32Array(view.buffer), at: view.byteOffset / 4 };
}

const forwardKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const heap = backend as HeapBackend;
  const x = inputs['x']!;
  const taps = (attrs as { taps: number }).taps;
  const [b, t, f, c] = x.shape as [number, number, number, number];
  // makeOutput may grow the heap, which detaches views taken before it: take them after.
  const out = heap.makeOutput([b, t, f, taps * c], 'float32');
  const [from, to] = [heapAt(heap, x), heapAt(heap, out)];
  shiftStackInto(from.heap, from.at, x.shape, taps, to.at);
  return out;
};

const backwardKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const heap = backend as HeapBackend;
  const dy = inputs['dy']!;
  const taps = (attrs as { taps: number }).taps;
  const [b, t, f, width] = dy.shape as [number, number, number, number];
  const shape = [b, t, f, width / taps];
  const dx = heap.makeOutput(shape, 'float32');
  const [from, to] = [heapAt(heap, dy), heapAt(heap, dx)];
  shiftStackGradInto(from.heap, from.at, shape, taps, to.at);
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

/**
 * The `ShiftStack` op's kernels on wasm (the op and its gradient: stages/gan/shift-stack.ts): each
 * direction is one pass over the backend's heap, runs of a channel vector moved by `copyWithin`.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { HeapBackend } from './kernel-util.ts';

/** The op's kernel names (stages/gan/shift-stack.ts registers its gradient under the first). */
const FORWARD = 'ShiftStack';
const BACKWARD = 'ShiftStackGrad';

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

/**
 * Registers the one-pass kernels for a backend whose tensors live in a heap it exposes (wasm).
 * @returns the kernel names registered.
 */
export function registerShiftStackKernels(backendName: string): string[] {
  for (const [kernelName, kernelFunc] of [[FORWARD, forwardKernel], [BACKWARD, backwardKernel]] as const) {
    if (!tf.getKernel(kernelName, backendName)) tf.registerKernel({ kernelName, backendName, kernelFunc });
  }
  return [FORWARD, BACKWARD];
}

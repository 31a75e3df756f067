/**
 * What the supplied wasm kernels share: calling the backend's kernels with Tensors or bare
 * TensorInfos, and the heap-facing methods of the wasm backend that kernels written in JS use.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The backend's heap-facing methods that kernels written in JS use (the wasm backend has them). */
export interface HeapBackend extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

export type Attrs = Record<string, unknown>;
export type Original = tf.KernelConfig | undefined;

/**
 * Kernels are called with their inputs as Tensors by the ops, or as bare TensorInfos by other
 * kernels; a bare one gets a Tensor holding a reference of its own, disposed by the caller.
 */
export function asTensor(info: tf.TensorInfo, backend: tf.KernelBackend): tf.Tensor {
  if (info instanceof tf.Tensor) return info;
  backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend);
}

export function withTensors<T>(inputs: tf.NamedTensorInfoMap, backend: tf.KernelBackend, names: readonly string[], body: (...ts: tf.Tensor[]) => T): T {
  const ts = names.map((n) => asTensor(inputs[n]!, backend));
  try {
    return body(...ts);
  } finally {
    ts.forEach((t, i) => {
      if (t !== inputs[names[i]!]) t.dispose();
    });
  }
}

export const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

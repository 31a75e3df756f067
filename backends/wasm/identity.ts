/**
 * `Identity` shares its input's data (tensors are immutable), as the cpu backend does, instead of
 * copying it: every pass-through of a gradient calls it.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';

export const identityKernel: tf.KernelFunc = ({ inputs, backend }) => {
  const x = inputs['x']!;
  (backend as tf.KernelBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

/**
 * `Conv2DBackpropFilter` built from kernels every backend has: the filter gradient of a 2D
 * convolution as one matrix product per filter tap,
 *
 *   dW[i, j, :, :] = patchᵢⱼ(x)ᵀ · dy,   patchᵢⱼ(x)[b, y, x', c] = xpad[b, i + y·sh, j + x'·sw, c]
 *
 * with patchᵢⱼ a strided slice of the padded input ([B·OH·OW, Ci]) and dy reshaped to
 * [B·OH·OW, Co]. The wasm backend ships no kernel for this op, so without it no 2D convolution
 * trains there; it has fast matMul (XNNPACK), which this puts to work. Registered for a backend by
 * {@link registerConv2dBackpropFilter}; the model code is the same on every backend.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';

interface Attrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

/** The filter gradient by taps, from plain ops. `x` [B, H, W, Ci], `dy` [B, OH, OW, Co], NHWC. */
export function conv2dFilterGradByTaps(x: tf.Tensor4D, dy: tf.Tensor4D, attrs: Attrs): tf.Tensor4D {
  if (attrs.dataFormat !== 'NHWC') throw new Error(`Conv2DBackpropFilter: only NHWC is supported, got ${attrs.dataFormat}`);
  const [kh, kw, ci, co] = attrs.filterShape;
  const info = tf.backend_util.computeConv2DInfo(x.shape, attrs.filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const [b, oh, ow] = [info.batchSize, info.outHeight, info.outWidth];
  const { top, left } = info.padInfo;
  // Pad far enough for every tap of every output. tfjs sizes the output of a numeric padding from
  // the filter's height alone, so a non-square filter may reach past the stated padding; the
  // backends read zeros there, and so does this.
  const bottom = Math.max(info.padInfo.bottom, (oh - 1) * info.strideHeight + kh - x.shape[1] - top);
  const right = Math.max(info.padInfo.right, (ow - 1) * info.strideWidth + kw - x.shape[2] - left);
  if (dy.shape[1] !== oh || dy.shape[2] !== ow || dy.shape[3] !== co) {
    throw new Error(`Conv2DBackpropFilter: dy has shape [${dy.shape.join(', ')}], expected [${b}, ${oh}, ${ow}, ${co}]`);
  }
  return tf.tidy(() => {
    const padded = top || bottom || left || right ? tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]) : x;
    const grad = tf.reshape(dy, [b * oh * ow, co]);
    const taps: tf.Tensor2D[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        taps.push(
          tf.tidy(() => {
            const patch = tf.stridedSlice(padded, [0, i, j, 0], [b, i + (oh - 1) * info.strideHeight + 1, j + (ow - 1) * info.strideWidth + 1, ci], [1, info.strideHeight, info.strideWidth, 1]);
            return tf.matMul(tf.reshape(patch, [b * oh * ow, ci]), grad, true, false) as tf.Tensor2D;
          }),
        );
      }
    }
    return tf.reshape(tf.stack(taps), [kh, kw, ci, co]);
  });
}

/**
 * The ops call kernels with their input Tensors; another kernel may call with bare TensorInfos,
 * which get a Tensor of their own with its own reference to the data, so that disposing it frees
 * nothing the caller still holds.
 */
function asTensor(info: tf.TensorInfo, backend: tf.KernelBackend): tf.Tensor {
  if (info instanceof tf.Tensor) return info;
  backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend);
}

/**
 * Registers the by-taps `Conv2DBackpropFilter` for `backendName` unless it has one already.
 * @returns whether it registered the kernel.
 */
export function registerConv2dBackpropFilter(backendName: string): boolean {
  if (tf.getKernel('Conv2DBackpropFilter', backendName)) return false;
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName,
    kernelFunc: ({ inputs, attrs, backend: kernelBackend }) => {
      const backend = kernelBackend as tf.KernelBackend;
      const x = asTensor(inputs['x']!, backend) as tf.Tensor4D;
      const dy = asTensor(inputs['dy']!, backend) as tf.Tensor4D;
      try {
        return conv2dFilterGradByTaps(x, dy, attrs as unknown as Attrs);
      } finally {
        // Wrappers made here hold a reference of their own (see asTensor); the ops' inputs do not.
        if (x !== inputs['x']) x.dispose();
        if (dy !== inputs['dy']) dy.dispose();
      }
    },
  });
  return true;
}

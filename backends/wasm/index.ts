/**
 * Kernels that make training fast on the wasm backend, each built from what that backend does
 * well: XNNPACK's matrix product and forward 2D convolution (a 1024³ product at 17 – 45 GFLOP/s
 * per thread on the 2-core build machine).
 * The backend's own kernels there (ms for one call):
 *
 *   matMul 1024³ 49 · with transposeB 606 · with transposeA 2480 (tfjs's gradient of matMul uses both)
 *   sum of a fresh [32768, 64] over axis 0: ≈ 100 · as ones · X: 11 · as an average pooling: 0.55
 *   (batch-norm moments, bias gradients)
 *   Conv2DBackpropInput ≈ 4 GFLOP/s · Conv2D ≈ 44 GFLOP/s; Conv2DBackpropFilter: none at all
 *   Identity copies its input (every gradient pass-through); a 2D Transpose runs at 60 M values/s
 *
 * So, registered for wasm by {@link registerFastKernels}, one kernel per file of this folder:
 * - `Identity` shares the input's data (as the cpu backend does); tensors are immutable.
 * - `Transpose` runs as copies in JS (250 – 600 M values/s by layout) for the permutations
 *   training uses once adjacent axes are merged: [1,0], [0,2,1], [2,1,0] and [1,0,2].
 * - `BatchMatMul` with transposed operands transposes them explicitly (or, for transposeA, computes
 *   the transposed product when that moves less, counting XNNPACK's packing of the right
 *   operand), then takes the fast path: one product for a batch of one or a shared right
 *   operand, else one product per batch entry (the backend's batched product is a naive loop,
 *   ≈ 0.6 GFLOP/s on the attention's shapes). A right operand once packed under another shape
 *   goes in as a copy (the backend caches packings by tensor id alone).
 * - `_FusedMatMul` (Dense layers with bias and activation) gets that same guard, nothing else.
 * - `ShiftStack` and its gradient (`shift-stack.ts`): the temporal taps of a 3D convolution in one
 *   pass over the heap each way, instead of pad, slices and a concat (whose gradient is a strided split).
 * - `Sum` and `Mean` over leading axes are one average pooling (XNNPACK).
 * - `Conv2DBackpropInput` is one forward convolution per stride phase with the flipped filter.
 * - `Conv2DBackpropFilter` at stride 1 is one matrix product per filter tap over a padded,
 *   channel-major copy of x read in place ("flat shifts"); at other strides, one forward
 *   convolution with batch and channels swapped.
 *
 * Anything outside a kernel's fast case (other layouts, dtypes, axes) goes to the backend's own
 * kernel, so results never depend on which path ran; tests compare every path with the cpu backend.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';
import { version_wasm } from '@tensorflow/tfjs-backend-wasm';
import type { Original } from './kernel-util.ts';
import { identityKernel } from './identity.ts';
import { transposeKernel } from './transpose.ts';
import { batchMatMulKernel, fusedMatMulKernel } from './matmul.ts';
import { leadingReduceKernel } from './reduce.ts';
import { convInputGradKernel } from './conv-input-grad.ts';
import { convFilterGradKernel } from './conv-filter-grad.ts';
import { registerShiftStackKernels } from './shift-stack.ts';
import { type Blas, type BlasLookup, findBlas } from './blas.ts';
import { conv2dKernel } from './conv-blas.ts';

/**
 * The tfjs-backend-wasm release these kernels are written against. They read its heap through
 * its backend's methods and work around its packing cache; another release may differ in both,
 * so it is refused with a clear error rather than trusted to give the same numbers.
 */
export const WRITTEN_FOR = '4.22';

/** @throws Error naming both releases when `installed` is not a {@link WRITTEN_FOR} release. */
export function checkWasmVersion(installed: string): void {
  if (!installed.startsWith(`${WRITTEN_FOR}.`)) {
    throw new Error(`the wasm kernels st-inpaint supplies are written for @tensorflow/tfjs-backend-wasm ${WRITTEN_FOR}.x, and ${installed} is installed: install ${WRITTEN_FOR} (npm ci from the lock file) or choose another --backend`);
  }
}

/** The supplied kernels, each made from the backend's own (if any) and the native library (if loaded). */
function fastKernels(blas: Blas | undefined): ReadonlyArray<readonly [string, (original: Original) => tf.KernelFunc]> {
  return [
    ['Identity', () => identityKernel],
    ['Transpose', transposeKernel],
    ['BatchMatMul', (o) => batchMatMulKernel(o, blas)],
    ['_FusedMatMul', fusedMatMulKernel],
    ['Sum', (o) => leadingReduceKernel(o, false)],
    ['Mean', (o) => leadingReduceKernel(o, true)],
    ['Conv2DBackpropInput', convInputGradKernel],
    ['Conv2DBackpropFilter', (o) => convFilterGradKernel(o, blas)],
    // Stride-1 forward convolutions (and so the input gradients, made of them) on the native library.
    ...(blas ? [['Conv2D', (o: Original) => conv2dKernel(o!, blas)] as const] : []),
  ];
}

/** What {@link registerFastKernels} put in place for a backend. */
export interface FastKernels {
  /** The kernels replaced or supplied. */
  readonly kernels: string[];
  /** The native library the products and stride-1 convolutions run on, or why there is none. */
  readonly native: BlasLookup;
}

const installed = new Map<string, FastKernels>();

/**
 * Puts the kernels above in place of (or, for Conv2DBackpropFilter, beside) the backend's own.
 * The native library is the one {@link findBlas} finds (`ST_INPAINT_BLAS`). Idempotent per backend.
 * @throws Error naming the library when ST_INPAINT_BLAS names one that does not load.
 */
export function registerFastKernels(backendName: string): FastKernels {
  checkWasmVersion(version_wasm);
  const supplied = registerShiftStackKernels(backendName);
  const done = installed.get(backendName);
  if (done) return done;
  const native = findBlas();
  const fast = fastKernels(native.blas);
  for (const [name, make] of fast) {
    const original = tf.getKernel(name, backendName);
    if (!original && name !== 'Conv2DBackpropFilter') continue;
    if (original) tf.unregisterKernel(name, backendName);
    tf.registerKernel({ kernelName: name, backendName, kernelFunc: make(original), ...(original?.setupFunc ? { setupFunc: original.setupFunc } : {}) });
  }
  const result: FastKernels = { kernels: [...fast.map(([name]) => name), ...supplied], native };
  installed.set(backendName, result);
  return result;
}

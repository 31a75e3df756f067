/**
 * Where tfjs-backend-webgpu's shaders stop short of what the model needs, and the wrappers that
 * make up for it.
 *
 * AddN binds every input as a storage buffer of one shader, and WebGPU allows 8 per stage by
 * default: the gradients' global norm sums dozens. The wrapper sums in groups that fit.
 *
 * Rank-5 tensors: several of the backend's shaders stop at rank 4
 * (`Select`: "Where for rank 5 is not yet supported"; broadcasting binary ops index a `vec5`
 * struct, which WGSL cannot do), while the model works on clips [B, T, H, W, C]. Every such op has
 * a lower-rank form with the same numbers, because the axes it treats alike can be merged:
 *
 * - elementwise ops with broadcasting: adjacent axes merge when each input is either full on both
 *   or broadcast on both ([B, T, H, W, C] · [B, T, H, W, 1] is [BTHW, C] · [BTHW, 1]);
 * - slices: an axis merges into the one before it when it is taken whole;
 * - concatenation along axis a: [P, dₐ, Q] pieces are [P, dₐ·Q] pieces concatenated on axis 1;
 * - transposes: axes of size 1 drop out, and axes that stay neighbours in the same order move as
 *   one ({@link reducedPermutation}, which the wasm transpose uses too);
 * - padding: an axis padded by nothing joins the one before it.
 *
 * The wrappers here reshape the inputs (free: a reshape shares the data), run the backend's own
 * kernel on the merged shapes, and reshape the result back. They leave lower-rank calls untouched.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';
import { reducedPermutation } from '../shape.ts';

/** Most dimensions every WebGPU shader of tfjs handles. */
const MAX_RANK = 4;

type Info = tf.TensorInfo;
type Backend = tf.KernelBackend & { incRef(dataId: tf.DataId): void; disposeData(dataId: tf.DataId): boolean };

/**
 * Merges the axes of an elementwise op's output `out` and its inputs (right-aligned, as numpy
 * broadcasts): returns the merged output shape and each input's merged shape.
 */
export function mergeBroadcastAxes(out: readonly number[], inputs: ReadonlyArray<readonly number[]>): { out: number[]; inputs: number[][] } {
  const rank = out.length;
  const padded = inputs.map((s) => [...new Array<number>(rank - s.length).fill(1), ...s]);
  const groups: Array<{ size: number; broadcast: boolean[] }> = [];
  for (let axis = 0; axis < rank; axis++) {
    const size = out[axis]!;
    if (size === 1) continue; // size 1 everywhere: no axis at all
    const broadcast = padded.map((s) => s[axis] === 1);
    const last = groups[groups.length - 1];
    if (last && last.broadcast.every((b, i) => b === broadcast[i])) last.size *= size;
    else groups.push({ size, broadcast });
  }
  if (groups.length === 0) groups.push({ size: 1, broadcast: padded.map(() => false) });
  return {
    out: groups.map((g) => g.size),
    inputs: padded.map((_, i) => groups.map((g) => (g.broadcast[i] ? 1 : g.size))),
  };
}

/** Merges a slice's axes: an axis taken whole joins the one before it. */
export function mergeSliceAxes(shape: readonly number[], begin: readonly number[], size: readonly number[]): { shape: number[]; begin: number[]; size: number[] } {
  const out = { shape: [shape[0]!], begin: [begin[0]!], size: [size[0]!] };
  for (let axis = 1; axis < shape.length; axis++) {
    const whole = begin[axis] === 0 && size[axis] === shape[axis];
    const at = out.shape.length - 1;
    if (whole) {
      out.shape[at]! *= shape[axis]!;
      out.begin[at]! *= shape[axis]!;
      out.size[at]! *= shape[axis]!;
    } else {
      out.shape.push(shape[axis]!);
      out.begin.push(begin[axis]!);
      out.size.push(size[axis]!);
    }
  }
  return out;
}

/** Merges a pad's axes: an axis padded by nothing joins the one before it. */
export function mergePadAxes(shape: readonly number[], paddings: ReadonlyArray<readonly [number, number]>): { shape: number[]; paddings: Array<[number, number]> } {
  const out = { shape: [shape[0]!], paddings: [[paddings[0]![0], paddings[0]![1]] as [number, number]] };
  for (let axis = 1; axis < shape.length; axis++) {
    const [before, after] = paddings[axis]!;
    const at = out.shape.length - 1;
    if (before === 0 && after === 0) {
      out.shape[at]! *= shape[axis]!;
      out.paddings[at] = [out.paddings[at]![0] * shape[axis]!, out.paddings[at]![1] * shape[axis]!];
    } else {
      out.shape.push(shape[axis]!);
      out.paddings.push([before, after]);
    }
  }
  return out;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The backend's reshape: a new TensorInfo over the same data (its reference counted). */
function reshaped(backend: Backend, x: Info, shape: number[]): Info {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape, dtype: x.dtype };
}

/**
 * Runs `kernel` on inputs reshaped to `shapes`, then gives its output `outShape`; the intermediate
 * references are released.
 */
function viaShapes(backend: Backend, kernel: tf.KernelFunc, inputs: Record<string, Info>, shapes: Record<string, number[]>, attrs: tf.NamedAttrMap, outShape: number[]): Info {
  const views: Record<string, Info> = {};
  for (const [name, x] of Object.entries(inputs)) views[name] = reshaped(backend, x, shapes[name]!);
  try {
    const result = kernel({ inputs: views, backend, attrs }) as Info;
    const out = reshaped(backend, result, outShape);
    backend.disposeData(result.dataId);
    return out;
  } finally {
    for (const v of Object.values(views)) backend.disposeData(v.dataId);
  }
}

/** Kernels that broadcast their inputs elementwise. */
const ELEMENTWISE = ['Add', 'Sub', 'Multiply', 'RealDiv', 'Maximum', 'Minimum', 'SquaredDifference', 'Pow', 'Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal', 'NotEqual', 'LogicalAnd', 'LogicalOr', 'FloorDiv', 'Mod', 'Atan2', 'Prelu', 'Select'];

function elementwise(original: tf.KernelFunc): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const named = inputs as Record<string, Info>;
    const names = Object.keys(named);
    const shapes = names.map((n) => named[n]!.shape);
    if (Math.max(...shapes.map((s) => s.length)) <= MAX_RANK) return original({ inputs, backend, attrs });
    const out = tf.backend_util.assertAndGetBroadcastShape(tf.backend_util.assertAndGetBroadcastShape(shapes[0]!, shapes[1] ?? shapes[0]!), shapes[2] ?? shapes[0]!);
    const merged = mergeBroadcastAxes(out, shapes);
    if (merged.out.length > MAX_RANK) return original({ inputs, backend, attrs });
    return viaShapes(backend as Backend, original, named, Object.fromEntries(names.map((n, i) => [n, merged.inputs[i]!])), attrs ?? {}, out);
  };
}

function slice(original: tf.KernelFunc): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const x = (inputs as { x: Info }).x;
    if (x.shape.length <= MAX_RANK) return original({ inputs, backend, attrs });
    const a = attrs as unknown as { begin: number | number[]; size: number | number[] };
    const [begin, size] = tf.slice_util.parseSliceParams(x as tf.TensorInfo as tf.Tensor, a.begin, a.size) as [number[], number[]];
    const merged = mergeSliceAxes(x.shape, begin, size);
    if (merged.shape.length > MAX_RANK) return original({ inputs, backend, attrs });
    return viaShapes(backend as Backend, original, { x }, { x: merged.shape }, { begin: merged.begin, size: merged.size }, size);
  };
}

function concat(original: tf.KernelFunc): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const pieces = Object.values(inputs) as Info[];
    const rank = pieces[0]?.shape.length ?? 0;
    if (rank <= MAX_RANK) return original({ inputs, backend, attrs });
    const axis = tf.util.parseAxisParam((attrs as unknown as { axis: number }).axis, pieces[0]!.shape)[0]!;
    const outer = product(pieces[0]!.shape.slice(0, axis));
    const outShape = tf.backend_util.computeOutShape(pieces.map((p) => p.shape), axis);
    const b = backend as Backend;
    const views = pieces.map((p) => reshaped(b, p, [outer, product(p.shape.slice(axis))]));
    try {
      const result = original({ inputs: views as unknown as tf.NamedTensorInfoMap, backend, attrs: { axis: 1 } }) as Info;
      const out = reshaped(b, result, outShape);
      b.disposeData(result.dataId);
      return out;
    } finally {
      for (const v of views) b.disposeData(v.dataId);
    }
  };
}

function transpose(original: tf.KernelFunc): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const x = (inputs as { x: Info }).x;
    if (x.shape.length <= MAX_RANK) return original({ inputs, backend, attrs });
    const perm = (attrs as unknown as { perm: number[] }).perm;
    const reduced = reducedPermutation(x.shape, perm);
    const outShape = perm.map((p) => x.shape[p]!);
    // Nothing moves but axes of size 1: the data as it is, in the new shape.
    if (reduced.perm.every((p, i) => p === i)) return reshaped(backend as Backend, x, outShape);
    if (reduced.dims.length > MAX_RANK) return original({ inputs, backend, attrs });
    return viaShapes(backend as Backend, original, { x }, { x: reduced.dims }, { perm: reduced.perm }, outShape);
  };
}

function pad(original: tf.KernelFunc): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const x = (inputs as { x: Info }).x;
    if (x.shape.length <= MAX_RANK) return original({ inputs, backend, attrs });
    const a = attrs as unknown as { paddings: Array<[number, number]>; constantValue: number };
    const merged = mergePadAxes(x.shape, a.paddings);
    if (merged.shape.length > MAX_RANK) return original({ inputs, backend, attrs });
    const outShape = x.shape.map((d, i) => d + a.paddings[i]![0] + a.paddings[i]![1]);
    return viaShapes(backend as Backend, original, { x }, { x: merged.shape }, { paddings: merged.paddings, constantValue: a.constantValue }, outShape);
  };
}

function addN(original: tf.KernelFunc): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const terms = Object.values(inputs) as Info[];
    const device = (backend as unknown as { device: { limits: { maxStorageBuffersPerShaderStage: number } } }).device;
    // One buffer is the output.
    const most = Math.max(2, device.limits.maxStorageBuffersPerShaderStage - 1);
    if (terms.length <= most) return original({ inputs, backend, attrs });
    const b = backend as Backend;
    const partial: Info[] = [];
    try {
      for (let at = 0; at < terms.length; at += most) {
        const group = terms.slice(at, at + most);
        partial.push(group.length === 1 ? reshaped(b, group[0]!, [...group[0]!.shape]) : (original({ inputs: group as unknown as tf.NamedTensorInfoMap, backend, attrs }) as Info));
      }
      return addN(original)({ inputs: partial as unknown as tf.NamedTensorInfoMap, backend, attrs }) as Info;
    } finally {
      for (const p of partial) b.disposeData(p.dataId);
    }
  };
}

const WRAPPERS: Record<string, (original: tf.KernelFunc) => tf.KernelFunc> = {
  AddN: addN,
  PadV2: pad,
  ...Object.fromEntries(ELEMENTWISE.map((name) => [name, elementwise])),
  Slice: slice,
  Concat: concat,
  Transpose: transpose,
};

/**
 * Replaces `backendName`'s kernels that stop at rank 4 or at the storage-buffer limit by the wrappers above.
 * @returns the kernel names wrapped.
 */
export function registerLimitWrappers(backendName: string): string[] {
  const wrapped: string[] = [];
  for (const [name, wrap] of Object.entries(WRAPPERS)) {
    const kernel = tf.getKernel(name, backendName);
    if (!kernel || (kernel as { rankWrapped?: boolean }).rankWrapped) continue;
    tf.unregisterKernel(name, backendName);
    tf.registerKernel({ ...kernel, kernelFunc: wrap(kernel.kernelFunc), rankWrapped: true } as tf.KernelConfig);
    wrapped.push(name);
  }
  return wrapped;
}

/**
 * Kernel meter for benchmarks: wraps every kernel registered for a backend so that each call is
 * counted, timed (self time: a kernel that calls other kernels is charged only for its own work)
 * and, for the kernels that carry the arithmetic of a network (convolutions and matrix
 * products), charged its FLOPs computed from its input and output shapes. Nested calls (a
 * supplied kernel built from other kernels) are not counted twice: FLOPs go to the outermost
 * kernel that has a formula.
 *
 * Timing is exact only for synchronous backends (wasm, cpu), which these benchmarks measure.
 */
import * as tf from '@tensorflow/tfjs-core';

type Shape = readonly number[];

const prod = (s: Shape): number => s.reduce((a, b) => a * b, 1);

/** FLOPs of one call (a multiply-add counts 2), or undefined for kernels without arithmetic of note. */
export function kernelFlops(kernel: string, inputs: Record<string, Shape>, attrs: Record<string, unknown>, output: Shape): number | undefined {
  switch (kernel) {
    case 'Conv2D':
    case 'FusedConv2D': {
      const [kh, kw, ci] = inputs['filter']!;
      return 2 * prod(output) * kh! * kw! * ci!;
    }
    case 'Conv2DBackpropInput': {
      // The same multiply-adds as the forward convolution whose output is dy.
      const [kh, kw, ci] = inputs['filter']!;
      return 2 * prod(inputs['dy']!) * kh! * kw! * ci!;
    }
    case 'Conv2DBackpropFilter': {
      const [kh, kw, ci] = attrs['filterShape'] as Shape;
      return 2 * prod(inputs['dy']!) * kh! * kw! * ci!;
    }
    case 'DepthwiseConv2dNative': {
      const [kh, kw] = inputs['filter']!;
      return 2 * prod(output) * kh! * kw!;
    }
    case 'Conv3D': {
      const [kd, kh, kw, ci] = inputs['filter']!;
      return 2 * prod(output) * kd! * kh! * kw! * ci!;
    }
    case 'Conv3DBackpropInputV2': {
      const [kd, kh, kw, ci] = inputs['filter']!;
      return 2 * prod(inputs['dy']!) * kd! * kh! * kw! * ci!;
    }
    case 'Conv3DBackpropFilterV2': {
      const [kd, kh, kw, ci] = attrs['filterShape'] as Shape;
      return 2 * prod(inputs['dy']!) * kd! * kh! * kw! * ci!;
    }
    case 'BatchMatMul':
    case '_FusedMatMul': {
      const a = inputs['a']!;
      const k = attrs['transposeA'] ? a[a.length - 2]! : a[a.length - 1]!;
      return 2 * prod(output) * k;
    }
    default:
      return undefined;
  }
}

export interface KernelStats {
  readonly kernel: string;
  calls: number;
  selfMs: number;
  flops: number;
  /** Inclusive time of the calls charged with `flops` (the outermost with a formula): their rate is flops / flopMs. */
  flopMs: number;
}

/** The calls of one kernel charged with FLOPs, on one set of input shapes and attributes: one layer's pass. */
export interface ShapeStats {
  readonly kernel: string;
  /** Input shapes, then stride and padding where the kernel has them. */
  readonly key: string;
  calls: number;
  flops: number;
  /** Inclusive time of those calls. */
  ms: number;
}

/** Meters every kernel of `backendName` until `stop()`. */
export class KernelMeter {
  readonly stats = new Map<string, KernelStats>();
  /** The FLOP-charged calls by kernel and shapes, so that a kernel's rate can be split by layer. */
  readonly byShape = new Map<string, ShapeStats>();
  private readonly originals: tf.KernelConfig[];
  private readonly stack: Array<{ started: number; childMs: number; counted: boolean }> = [];
  private flopDepth = 0;

  constructor(readonly backendName: string) {
    this.originals = tf.getKernelsForBackend(backendName);
    for (const config of this.originals) {
      tf.unregisterKernel(config.kernelName, backendName);
      tf.registerKernel({ ...config, kernelFunc: this.wrap(config) });
    }
  }

  private wrap(config: tf.KernelConfig): tf.KernelFunc {
    const { kernelName, kernelFunc } = config;
    let entry = this.stats.get(kernelName);
    if (!entry) this.stats.set(kernelName, (entry = { kernel: kernelName, calls: 0, selfMs: 0, flops: 0, flopMs: 0 }));
    const stats = entry;
    return (args) => {
      const frame = { started: performance.now(), childMs: 0, counted: false };
      this.stack.push(frame);
      const shapes: Record<string, Shape> = {};
      for (const [name, t] of Object.entries(args.inputs)) if (t) shapes[name] = t.shape;
      const outer = this.flopDepth === 0;
      const formula = outer ? kernelFlops(kernelName, shapes, args.attrs as Record<string, unknown>, []) : undefined;
      if (formula !== undefined) this.flopDepth += 1;
      let flops = 0;
      try {
        const out = kernelFunc(args);
        if (formula !== undefined) {
          const first = Array.isArray(out) ? out[0]! : (out as tf.TensorInfo);
          flops = kernelFlops(kernelName, shapes, args.attrs as Record<string, unknown>, first.shape)!;
          stats.flops += flops;
        }
        return out;
      } finally {
        if (formula !== undefined) this.flopDepth -= 1;
        this.stack.pop();
        const ms = performance.now() - frame.started;
        stats.calls += 1;
        stats.selfMs += ms - frame.childMs;
        if (formula !== undefined) {
          stats.flopMs += ms;
          this.chargeShape(kernelName, shapes, args.attrs as Record<string, unknown>, flops, ms);
        }
        const parent = this.stack[this.stack.length - 1];
        if (parent) parent.childMs += ms;
      }
    };
  }

  private chargeShape(kernel: string, shapes: Record<string, Shape>, attrs: Record<string, unknown>, flops: number, ms: number): void {
    const parts = Object.entries(shapes).map(([name, shape]) => `${name} [${shape.join(', ')}]`);
    if (attrs.filterShape) parts.push(`filter [${(attrs.filterShape as number[]).join(', ')}]`);
    if (attrs.strides !== undefined) parts.push(`stride ${String(attrs.strides)}`);
    if (attrs.pad !== undefined) parts.push(`pad ${typeof attrs.pad === 'object' ? JSON.stringify(attrs.pad) : String(attrs.pad)}`);
    if (attrs.transposeA || attrs.transposeB) parts.push(`transposed ${attrs.transposeA ? 'A' : ''}${attrs.transposeB ? 'B' : ''}`);
    const key = parts.join(', ');
    const id = `${kernel}\u0000${key}`;
    let entry = this.byShape.get(id);
    if (!entry) this.byShape.set(id, (entry = { kernel, key, calls: 0, flops: 0, ms: 0 }));
    entry.calls += 1;
    entry.flops += flops;
    entry.ms += ms;
  }

  get totalFlops(): number {
    let sum = 0;
    for (const s of this.stats.values()) sum += s.flops;
    return sum;
  }

  reset(): void {
    for (const s of this.stats.values()) Object.assign(s, { calls: 0, selfMs: 0, flops: 0, flopMs: 0 });
    this.byShape.clear();
  }

  /** The kernels that took the most time, heaviest first. */
  top(n: number): KernelStats[] {
    return [...this.stats.values()].filter((s) => s.calls > 0).sort((a, b) => b.selfMs - a.selfMs).slice(0, n);
  }

  /** Puts the backend's own kernels back. */
  stop(): void {
    for (const config of this.originals) {
      tf.unregisterKernel(config.kernelName, this.backendName);
      tf.registerKernel(config);
    }
  }
}

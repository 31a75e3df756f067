/**
 * The building blocks of the inpainting GAN (method.md §3), as plain tfjs-core ops over explicit
 * variables: spectrally normalised 2D and 3D convolutions, 3D batch norm, the pre-activation 3D
 * residual block and per-frame self-attention.
 *
 * Every layer registers its variables in a {@link ParamStore} when it is built, so a network's
 * parameters are known (and counted) before it ever runs. Trainable variables are the weights;
 * state variables are what training updates without gradients (the spectral-norm vectors, batch-norm
 * running statistics). Both go into checkpoints.
 *
 * 3D convolutions are computed as one 2D convolution over time folded into the batch axis, with the
 * kt temporal taps stacked along channels: the same numbers as conv3d, on the 2D kernels every
 * backend makes fast, and trainable wherever 2D convolution trains.
 *
 * Must not know about data, occlusion or training loops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Random } from '../random.ts';
import { shiftStack } from './shift-stack.ts';

/** Whether a forward pass trains (batch statistics, running averages updated) or infers. */
export interface Mode {
  readonly training: boolean;
  /** With `training`, whether the running batch-norm statistics move (default true); false: batch statistics, nothing changed. */
  readonly updateStatistics?: boolean;
}

/** A network's variables by name, created deterministically from (seed, network, name). */
export class ParamStore {
  readonly trainable = new Map<string, tf.Variable>();
  readonly state = new Map<string, tf.Variable>();

  constructor(
    readonly network: string,
    private readonly seed: number,
  ) {}

  private key(name: string): string {
    return `${this.network}/${name}`;
  }

  private seedFor(name: string): number {
    return Random.fromKey(this.seed, this.key(name)).int(0, 0x7fffffff);
  }

  private add(map: Map<string, tf.Variable>, name: string, init: tf.Tensor, trainable: boolean): tf.Variable {
    if (this.trainable.has(name) || this.state.has(name)) throw new Error(`${this.network}: two variables named "${name}"`);
    // Variable names are global to tfjs, so two trainers in one process get distinct ones.
    const variable = tf.variable(init, trainable, `${this.key(name)}#${ParamStore.serial++}`);
    init.dispose();
    map.set(name, variable);
    return variable;
  }
  private static serial = 0;

  /** A trainable weight drawn from N(0, std) (method.md §3: N(0, 0.02)). */
  normal(name: string, shape: number[], std = 0.02): tf.Variable {
    return this.add(this.trainable, name, tf.randomNormal(shape, 0, std, 'float32', this.seedFor(name)), true);
  }

  /** A trainable weight filled with `value` (biases 0, batch-norm scale 1). */
  constant(name: string, shape: number[], value: number): tf.Variable {
    return this.add(this.trainable, name, tf.fill(shape, value, 'float32'), true);
  }

  /** A state variable (not trained by gradient). */
  stateVariable(name: string, init: tf.Tensor): tf.Variable {
    return this.add(this.state, name, init, false);
  }

  /** A unit vector drawn from N(0, 1), normalised: the start of a power iteration. */
  unitVector(name: string, length: number): tf.Variable {
    const v = tf.tidy(() => {
      const raw = tf.randomNormal([length], 0, 1, 'float32', this.seedFor(name));
      return tf.div(raw, tf.add(tf.norm(raw), 1e-12));
    });
    return this.stateVariable(name, v);
  }

  /** Number of trainable scalars. */
  get parameterCount(): number {
    let n = 0;
    for (const v of this.trainable.values()) n += v.size;
    return n;
  }

  dispose(): void {
    for (const v of [...this.trainable.values(), ...this.state.values()]) v.dispose();
    this.trainable.clear();
    this.state.clear();
  }
}

export interface ConvSpec {
  /** 2 for frames [N, H, W, C], 3 for clips [B, T, H, W, C]. */
  readonly dims: 2 | 3;
  readonly inChannels: number;
  readonly outChannels: number;
  /** Kernel size in every dimension (time too for dims = 3). */
  readonly kernel: number;
  /** Spatial stride; the temporal stride is always 1. Default 1. */
  readonly stride?: number;
  readonly bias: boolean;
}

/**
 * A convolution with spectral normalisation (Miyato et al. 2018): the weight is divided by its
 * largest singular value σ, estimated by power iteration with the vectors u, v kept as state.
 * `powerIterate()` does one iteration (outside any gradient tape: u and v are constants to the
 * gradient, as in PyTorch's `spectral_norm`); the forward pass uses σ = vᵀ W u with the stored
 * vectors, so its gradient flows through W only. Padding is k // 2 on every side ("same" at
 * stride 1, PyTorch's `padding=1` for k = 3 at stride 2).
 */
export class SNConv {
  readonly weight: tf.Variable;
  readonly bias?: tf.Variable;
  private readonly u: tf.Variable;
  private readonly v: tf.Variable;
  readonly spec: Required<ConvSpec>;

  constructor(params: ParamStore, name: string, spec: ConvSpec) {
    this.spec = { stride: 1, ...spec };
    const { dims, inChannels, outChannels, kernel } = this.spec;
    const taps = dims === 3 ? [kernel, kernel, kernel] : [kernel, kernel];
    this.weight = params.normal(`${name}.weight`, [...taps, inChannels, outChannels]);
    if (spec.bias) this.bias = params.constant(`${name}.bias`, [outChannels], 0);
    this.u = params.unitVector(`${name}.u`, outChannels);
    this.v = params.unitVector(`${name}.v`, this.weight.size / outChannels);
  }

  /** The weight as a matrix [rows, out]. */
  private matrix(): tf.Tensor2D {
    return tf.reshape(this.weight, [-1, this.spec.outChannels]);
  }

  /** One power iteration: v ← normalise(W u), u ← normalise(Wᵀ v). */
  powerIterate(): void {
    tf.tidy(() => {
      const w = this.matrix();
      const v = tf.matMul(w, tf.reshape(this.u, [-1, 1]));
      const vn = tf.div(v, tf.add(tf.norm(v), 1e-12));
      const u = tf.matMul(w, vn, true, false);
      const un = tf.div(u, tf.add(tf.norm(u), 1e-12));
      this.v.assign(tf.reshape(vn, [-1]));
      this.u.assign(tf.reshape(un, [-1]));
    });
  }

  /** σ = vᵀ W u, the current estimate of the largest singular value. */
  sigma(): tf.Scalar {
    return tf.tidy(() => tf.reshape(tf.matMul(tf.matMul(tf.reshape(this.v, [1, -1]), this.matrix()), tf.reshape(this.u, [-1, 1])), []) as tf.Scalar);
  }

  apply<T extends tf.Tensor4D | tf.Tensor5D>(x: T): T {
    const w = tf.div(this.weight, this.sigma());
    const { stride, kernel } = this.spec;
    const y = this.spec.dims === 2 ? conv2dSame(x as tf.Tensor4D, w as tf.Tensor4D, stride, kernel) : conv3dBy2d(x as tf.Tensor5D, w as tf.Tensor5D, stride);
    return (this.bias ? tf.add(y, this.bias) : y) as T;
  }
}

function conv2dSame(x: tf.Tensor4D, w: tf.Tensor4D, stride: number, kernel: number): tf.Tensor4D {
  return tf.conv2d(x, w, stride, kernel === 1 ? 'valid' : Math.floor(kernel / 2));
}

/**
 * conv3d with temporal stride 1 and padding k // 2 in time and space, as one 2D convolution: the
 * kt shifted copies of the clip are stacked along channels (tap-major) and the filter
 * [kt, kh, kw, Ci, Co] becomes [kh, kw, kt·Ci, Co].
 */
export function conv3dBy2d(x: tf.Tensor5D, w: tf.Tensor5D, stride = 1): tf.Tensor5D {
  const [b, t, h, wd, ci] = x.shape;
  const [kt, kh, kw, , co] = w.shape;
  if (kh !== kw || kt !== kh) throw new Error(`conv3dBy2d: cubic kernels only, got ${w.shape.slice(0, 3).join('×')}`);
  const stacked = shiftStack(tf.reshape(x, [b, t, h * wd, ci]), kt);
  const filter = tf.reshape(tf.transpose(w, [1, 2, 0, 3, 4]), [kh, kw, kt * ci, co]) as tf.Tensor4D;
  const y = conv2dSame(tf.reshape(stacked, [b * t, h, wd, kt * ci]) as tf.Tensor4D, filter, stride, kh);
  const [, oh, ow] = y.shape;
  return tf.reshape(y, [b, t, oh, ow, co]);
}

/**
 * Batch norm over every axis but channels (BatchNorm3d). Training uses the batch's statistics and
 * moves the running ones (momentum 0.1, unbiased variance, as PyTorch); inference uses the running.
 */
export class BatchNorm {
  private readonly gamma: tf.Variable;
  private readonly beta: tf.Variable;
  private readonly runningMean: tf.Variable;
  private readonly runningVar: tf.Variable;

  /** @param scale the initial γ (default 1). */
  constructor(params: ParamStore, name: string, channels: number, scale = 1) {
    this.gamma = params.constant(`${name}.gamma`, [channels], scale);
    this.beta = params.constant(`${name}.beta`, [channels], 0);
    this.runningMean = params.stateVariable(`${name}.running-mean`, tf.zeros([channels]));
    this.runningVar = params.stateVariable(`${name}.running-var`, tf.ones([channels]));
  }

  apply(x: tf.Tensor5D, mode: Mode): tf.Tensor5D {
    if (!mode.training) {
      const scale = tf.mul(this.gamma, tf.rsqrt(tf.add(this.runningVar, EPSILON)));
      return tf.add(tf.mul(x, scale), tf.sub(this.beta, tf.mul(this.runningMean, scale)));
    }
    const { mean, variance } = tf.moments(x, [0, 1, 2, 3]);
    const n = x.size / x.shape[4];
    if (mode.updateStatistics !== false) tf.tidy(() => {
      const unbiased = tf.mul(variance, n / Math.max(n - 1, 1));
      this.runningMean.assign(tf.add(tf.mul(this.runningMean, 0.9), tf.mul(mean, 0.1)));
      this.runningVar.assign(tf.add(tf.mul(this.runningVar, 0.9), tf.mul(unbiased, 0.1)));
    });
    return batchNormTraining(x, this.gamma, this.beta, mean, variance);
  }
}

const EPSILON = 1e-5;

/**
 * y = x·s + t with s = γ/√(σ² + ε), t = β − μ·s (μ, σ² the batch's moments over all but channels),
 * with the analytic backward pass (x̂ = (x − μ)/√(σ² + ε), sums over all but channels):
 *
 *   dβ = Σ dy,  dγ = Σ dy·x̂,  dx = s·(dy − dβ/n − x̂·dγ/n)
 *
 * Written out with basic ops (tfjs's fused batchNorm has no gradient for rank-5 inputs). The
 * forward pass is two passes over x, the per-channel arithmetic on [C]; differentiating through
 * the moments instead costs about twice the passes, and tfjs's gradient of a mean builds a tensor
 * of ones the size of x in JS each time.
 */
function batchNormTraining(x: tf.Tensor5D, gamma: tf.Tensor, beta: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor): tf.Tensor5D {
  const f = tf.customGrad((...args: unknown[]) => {
    const [xi, g, b] = args as [tf.Tensor5D, tf.Tensor1D, tf.Tensor1D];
    const save = args[3] as tf.GradSaveFunc;
    const scale = tf.mul(g, tf.rsqrt(tf.add(variance, EPSILON)));
    // The moments are made outside this function (they also move the running statistics): kept
    // for the backward pass, which runs after the forward pass's intermediates are gone.
    save([xi, g, mean, variance]);
    return {
      value: tf.add(tf.mul(xi, scale), tf.sub(b, tf.mul(mean, scale))),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, gs, mu, sigma2] = saved as [tf.Tensor5D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
        const axes = [0, 1, 2, 3];
        const count = xs.size / xs.shape[4];
        const r = tf.rsqrt(tf.add(sigma2, EPSILON));
        const xHat = tf.mul(tf.sub(xs, mu), r);
        const dBeta = tf.sum(dy, axes);
        const dGamma = tf.sum(tf.mul(dy, xHat), axes);
        const dx = tf.mul(tf.sub(tf.sub(dy, tf.div(dBeta, count)), tf.mul(xHat, tf.div(dGamma, count))), tf.mul(gs, r));
        return [dx, dGamma, dBeta];
      },
    };
  });
  return f(x, gamma, beta) as tf.Tensor5D;
}

/**
 * Pre-activation residual block: BN → ReLU → conv → BN → ReLU → conv, plus a shortcut that is a
 * 1×1(×1) convolution when the channel count changes. Convolutions have no bias. 3D convolutions
 * by default (the paper's generator); with `dims` 2 each frame is convolved on its own (the static
 * and recurrent generators), on the same [B, T, H, W, C] tensors.
 */
export class ResBlock {
  private readonly bn1: BatchNorm;
  private readonly conv1: SNConv;
  private readonly bn2: BatchNorm;
  private readonly conv2: SNConv;
  private readonly shortcut?: SNConv;

  constructor(params: ParamStore, name: string, inChannels: number, outChannels: number, dims: 2 | 3 = 3) {
    this.bn1 = new BatchNorm(params, `${name}.bn1`, inChannels);
    this.conv1 = new SNConv(params, `${name}.conv1`, { dims, inChannels, outChannels, kernel: 3, bias: false });
    this.bn2 = new BatchNorm(params, `${name}.bn2`, outChannels);
    this.conv2 = new SNConv(params, `${name}.conv2`, { dims, inChannels: outChannels, outChannels, kernel: 3, bias: false });
    if (inChannels !== outChannels) this.shortcut = new SNConv(params, `${name}.shortcut`, { dims, inChannels, outChannels, kernel: 1, bias: false });
  }

  get convs(): SNConv[] {
    return [this.conv1, this.conv2, ...(this.shortcut ? [this.shortcut] : [])];
  }

  apply(x: tf.Tensor5D, mode: Mode): tf.Tensor5D {
    const h = perFrame(this.conv1, tf.relu(this.bn1.apply(x, mode)));
    const branch = perFrame(this.conv2, tf.relu(this.bn2.apply(h, mode)));
    return tf.add(branch, this.shortcut ? perFrame(this.shortcut, x) : x);
  }
}

/** A convolution on clips [B, T, H, W, C]: 3D as it is, 2D on every frame separately. */
export function perFrame(conv: SNConv, x: tf.Tensor5D): tf.Tensor5D {
  if (conv.spec.dims === 3) return conv.apply(x);
  const [b, t, h, w, c] = x.shape;
  const y = conv.apply(tf.reshape(x, [b * t, h, w, c]) as tf.Tensor4D);
  const [, oh, ow, co] = y.shape;
  return tf.reshape(y, [b, t, oh, ow, co]);
}

/**
 * SAGAN self-attention on each frame separately (time folded into the batch axis, which the
 * official code gets wrong, method.md §3): θ, φ to C/8 channels, g to C/2, φ and g max-pooled 2×2,
 * softmax(θ φᵀ) g mapped back to C channels and added with a learned gain σ that starts at 0.
 * Needs even frame height and width.
 */
/** Channels of the attention's keys (θ, φ: C/8) and values (g: C/2), at least 1 each. */
export function attentionWidths(channels: number): { key: number; value: number } {
  return { key: Math.max(1, Math.floor(channels / 8)), value: Math.max(1, Math.floor(channels / 2)) };
}

export class FrameAttention {
  private readonly theta: SNConv;
  private readonly phi: SNConv;
  private readonly g: SNConv;
  private readonly out: SNConv;
  private readonly gain: tf.Variable;
  private readonly key: number;
  private readonly value: number;

  constructor(params: ParamStore, name: string, channels: number) {
    ({ key: this.key, value: this.value } = attentionWidths(channels));
    const conv = (part: string, inChannels: number, outChannels: number): SNConv => new SNConv(params, `${name}.${part}`, { dims: 2, inChannels, outChannels, kernel: 1, bias: false });
    this.theta = conv('theta', channels, this.key);
    this.phi = conv('phi', channels, this.key);
    this.g = conv('g', channels, this.value);
    this.out = conv('out', this.value, channels);
    this.gain = params.constant(`${name}.gain`, [], 0);
  }

  get convs(): SNConv[] {
    return [this.theta, this.phi, this.g, this.out];
  }

  apply(x: tf.Tensor5D): tf.Tensor5D {
    const [b, t, h, w, c] = x.shape;
    if (h % 2 || w % 2) throw new Error(`self-attention needs even frame sizes, got ${h}×${w}`);
    const frames = tf.reshape(x, [b * t, h, w, c]) as tf.Tensor4D;
    const n = b * t;
    const theta = tf.reshape(this.theta.apply(frames), [n, h * w, this.key]) as tf.Tensor3D;
    const phi = tf.reshape(tf.maxPool(this.phi.apply(frames), 2, 2, 'valid'), [n, (h * w) / 4, this.key]) as tf.Tensor3D;
    const g = tf.reshape(tf.maxPool(this.g.apply(frames), 2, 2, 'valid'), [n, (h * w) / 4, this.value]) as tf.Tensor3D;
    const attention = tf.softmax(tf.matMul(theta, phi, false, true));
    const attended = tf.reshape(tf.matMul(attention, g), [n, h, w, this.value]) as tf.Tensor4D;
    const o = tf.reshape(this.out.apply(attended), [b, t, h, w, c]);
    return tf.add(x, tf.mul(this.gain, o));
  }
}

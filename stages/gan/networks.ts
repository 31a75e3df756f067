/**
 * The three networks of the method (method.md §3): the generator φ (3D residual blocks, per-frame
 * self-attention, batch norm, tanh), the frame discriminator D_f (2D PatchGAN) and the sequence
 * discriminator D_s (3D PatchGAN, temporal stride 1, output map summed to one score per clip);
 * and the generators of the paper's SST ablations, static (2D) and recurrent (ConvGRU).
 * Spectral normalisation on every convolution, weights N(0, 0.02), biases 0.
 *
 * Tensors are channels-last: clips [B, T, H, W, C], frames [N, H, W, C], values in [−1, 1].
 */
import * as tf from '@tensorflow/tfjs-core';
import { temporalInterpolation } from './prior.ts';
import { BatchNorm, FrameAttention, ParamStore, ResBlock, SNConv, attentionWidths, perFrame, type Mode } from './layers.ts';

export interface GanConfig {
  /** Base width C of every network (paper and official code: 32). */
  readonly base: number;
  /** Image channels C_img: 1 (gray) or 3 (colour). */
  readonly channels: number;
  /** Frames T per clip. */
  readonly frames: number;
  /** Frame height and width in pixels (even, for the attention's 2×2 pooling). */
  readonly height: number;
  readonly width: number;
  /** The paper's extra 16C → 16C residual block (row 3 of its table; absent in the official code). */
  readonly extraBlock: boolean;
  /**
   * Not in the paper (absent: the paper's generator). When true, φ's output is offset by each
   * clip's visible mean per channel, φ(y) = tanh(out(y) + atanh(μ)), and the last batch norm's
   * scale starts at {@link MEAN_OFFSET_GAMMA} instead of 1, so an untrained G fills every hole with
   * close to the mean fill and training learns the departure from it. See `Generator.apply`.
   */
  readonly meanOffset?: boolean;
  /**
   * Not in the paper (absent: the paper's generator). As `meanOffset`, with each hidden pixel's
   * temporal linear interpolation from its nearest visible frames (stages/gan/prior.ts) in place of
   * the clip's mean: an untrained G fills close to the interpolation baseline, and training learns
   * the departure from it. Uses the observation only.
   */
  readonly interpolationOffset?: boolean;
  /**
   * Not in the paper; only with `interpolationOffset`. G's input is the observation with its
   * hidden pixels set to their temporal interpolation instead of the occlusion's fill value, so
   * that the network sees the clip it corrects (the paper's G sees the observation as it is).
   */
  readonly interpolationInput?: boolean;
  /**
   * The paper's ablations (absent: the paper's model). `static`: the same generator with 2D
   * convolutions, each frame filled on its own, and no D_s. `recurrent`: a ConvGRU generator that
   * sees past frames only (see {@link RecurrentGenerator}).
   */
  readonly variant?: 'static' | 'recurrent';
}

/** The last batch norm's initial scale when the generator has a mean offset: small, so that the untrained fill is close to μ. */
export const MEAN_OFFSET_GAMMA = 0.1;

/** The paper's settings: C = 32, 64×64, 35 frames, with the extra block. */
export const PAPER_CONFIG: GanConfig = { base: 32, channels: 3, frames: 35, height: 64, width: 64, extraBlock: true };

/** Generator channel plan (method.md §3) as (in, out) pairs of its residual blocks, and where the attention sits. */
export function generatorPlan(c: GanConfig): { blocks: Array<[number, number]>; attentionAfter: number } {
  const C = c.base;
  const blocks: Array<[number, number]> = [[c.channels, C], [C, 16 * C]];
  if (c.extraBlock) blocks.push([16 * C, 16 * C]);
  blocks.push([16 * C, 8 * C], [8 * C, 4 * C], [4 * C, 2 * C]);
  const attentionAfter = blocks.length;
  blocks.push([2 * C, C]);
  return { blocks, attentionAfter };
}

/** Common surface of the three networks. */
export abstract class Network {
  readonly params: ParamStore;

  constructor(name: string, seed: number) {
    this.params = new ParamStore(name, seed);
  }

  protected abstract get convs(): SNConv[];

  /** One power iteration of every spectral norm (before a training forward pass). */
  powerIterate(): void {
    for (const conv of this.convs) conv.powerIterate();
  }

  get parameterCount(): number {
    return this.params.parameterCount;
  }

  dispose(): void {
    this.params.dispose();
  }
}

/** φ: observed clip → clip of the same shape in [−1, 1]. The mask is not an input (method.md §2). */
export class Generator extends Network {
  private readonly blocks: ResBlock[];
  private readonly attention: FrameAttention;
  private readonly attentionAfter: number;
  private readonly outNorm: BatchNorm;
  private readonly outConv: SNConv;

  constructor(readonly config: GanConfig, seed: number) {
    super('generator', seed);
    const plan = generatorPlan(config);
    const dims = config.variant === 'static' ? 2 : 3;
    this.blocks = plan.blocks.map(([i, o], k) => new ResBlock(this.params, `block${k + 1}`, i, o, dims));
    this.attentionAfter = plan.attentionAfter;
    this.attention = new FrameAttention(this.params, 'attention', 2 * config.base);
    this.outNorm = new BatchNorm(this.params, 'out-bn', config.base, config.meanOffset || config.interpolationOffset ? MEAN_OFFSET_GAMMA : 1);
    this.outConv = new SNConv(this.params, 'out', { dims, inChannels: config.base, outChannels: config.channels, kernel: 3, bias: true });
  }

  protected get convs(): SNConv[] {
    return [...this.blocks.flatMap((b) => b.convs), ...this.attention.convs, this.outConv];
  }

  /**
   * φ(y) for observed clips `y` [B, T, H, W, C] in [−1, 1]. With a mean offset, the masks `m`
   * [B, T, H, W, 1] (1 = visible) give each clip's visible mean μ per channel (0 where nothing is visible).
   */
  apply(y: tf.Tensor5D, mode: Mode, m?: tf.Tensor5D): tf.Tensor5D {
    let h = y;
    let offset: tf.Tensor | undefined;
    if (this.config.meanOffset) offset = fillOffset(visibleMean(y, m));
    else if (this.config.interpolationOffset) {
      const interpolated = interpolate(y, m);
      offset = fillOffset(interpolated);
      if (this.config.interpolationInput) h = interpolated;
    }
    this.blocks.forEach((block, k) => {
      h = block.apply(h, mode);
      if (k + 1 === this.attentionAfter) h = this.attention.apply(h);
    });
    const out = perFrame(this.outConv, tf.relu(this.outNorm.apply(h, mode)));
    return tf.tanh(offset ? (tf.add(out, offset) as tf.Tensor5D) : out);
  }
}

/** What G's output is offset by to start at the fill `v`: atanh(v), v clipped to ±0.99 (tanh(out + offset) = v at out = 0). */
function fillOffset(v: tf.Tensor): tf.Tensor {
  return tf.atanh(tf.clipByValue(v, -0.99, 0.99));
}

/** Each clip's visible mean per channel (0 where nothing is visible): the mean offset's fill. */
function visibleMean(y: tf.Tensor5D, m: tf.Tensor5D | undefined): tf.Tensor {
  if (!m) throw new Error('a generator with a mean offset needs the masks');
  const visible = tf.sum(m, [1, 2, 3], true);
  return tf.div(tf.sum(tf.mul(y, m), [1, 2, 3], true), tf.maximum(visible, 1));
}

/** The observation with each hidden pixel replaced by its temporal interpolation (the interpolation offset's fill, and G's input with `interpolationInput`). */
function interpolate(y: tf.Tensor5D, m: tf.Tensor5D | undefined): tf.Tensor5D {
  if (!m) throw new Error('a generator with an interpolation offset needs the masks');
  return temporalInterpolation(y, m);
}

/** The recurrent generator's channel plan: per-frame encoder blocks, the ConvGRU's state, decoder blocks around the attention. */
export function recurrentPlan(c: GanConfig): { encoder: Array<[number, number]>; hidden: number; decoder: Array<[number, number]> } {
  const C = c.base;
  return { encoder: [[c.channels, C], [C, 4 * C]], hidden: 4 * C, decoder: [[4 * C, 2 * C], [2 * C, C]] };
}

/**
 * φ of the paper's recurrent ablation: it fills frame t from frames 1…t only. Each frame is encoded
 * by 2D residual blocks (C_img → C → 4C); a ConvGRU (3×3 convolutions, state 4C, zero at the
 * start) runs forward in time, h_t = (1 − z)·h_{t−1} + z·tanh(W[x_t, r·h_{t−1}]) with z, r =
 * σ(W'[x_t, h_{t−1}]); each state is decoded per frame (4C → 2C, self-attention, 2C → C, batch
 * norm, ReLU, 3×3 conv, tanh). The paper gives no more than "ConvGRU, past frames only": this is
 * the smallest such generator built from the paper's own blocks. In inference (running batch
 * statistics) output t depends on no frame after t; in training, batch norm's statistics span the
 * batch, as every batch norm's do.
 */
export class RecurrentGenerator extends Network {
  private readonly encoder: ResBlock[];
  private readonly gates: SNConv;
  private readonly candidate: SNConv;
  private readonly decoder: ResBlock[];
  private readonly attention: FrameAttention;
  private readonly outNorm: BatchNorm;
  private readonly outConv: SNConv;
  private readonly hidden: number;

  constructor(readonly config: GanConfig, seed: number) {
    super('generator', seed);
    if (config.meanOffset || config.interpolationOffset) throw new Error("the recurrent generator has no mean or interpolation offset (they would show it future frames)");
    const plan = recurrentPlan(config);
    this.hidden = plan.hidden;
    this.encoder = plan.encoder.map(([i, o], k) => new ResBlock(this.params, `encoder${k + 1}`, i, o, 2));
    const both = plan.encoder.at(-1)![1] + plan.hidden;
    this.gates = new SNConv(this.params, 'gru.gates', { dims: 2, inChannels: both, outChannels: 2 * plan.hidden, kernel: 3, bias: true });
    this.candidate = new SNConv(this.params, 'gru.candidate', { dims: 2, inChannels: both, outChannels: plan.hidden, kernel: 3, bias: true });
    this.decoder = plan.decoder.map(([i, o], k) => new ResBlock(this.params, `decoder${k + 1}`, i, o, 2));
    this.attention = new FrameAttention(this.params, 'attention', plan.decoder[0]![1]);
    this.outNorm = new BatchNorm(this.params, 'out-bn', config.base);
    this.outConv = new SNConv(this.params, 'out', { dims: 2, inChannels: config.base, outChannels: config.channels, kernel: 3, bias: true });
  }

  protected get convs(): SNConv[] {
    return [...this.encoder.flatMap((b) => b.convs), this.gates, this.candidate, ...this.decoder.flatMap((b) => b.convs), ...this.attention.convs, this.outConv];
  }

  apply(y: tf.Tensor5D, mode: Mode): tf.Tensor5D {
    const [b, t, h, w] = y.shape;
    let x = y;
    for (const block of this.encoder) x = block.apply(x, mode);
    const frames = tf.unstack(x, 1) as tf.Tensor4D[];
    let state: tf.Tensor4D = tf.zeros([b, h, w, this.hidden]);
    const states: tf.Tensor4D[] = [];
    for (let k = 0; k < t; k++) {
      const [z, r] = tf.split(tf.sigmoid(this.gates.apply(tf.concat([frames[k]!, state], 3) as tf.Tensor4D)), 2, 3) as [tf.Tensor4D, tf.Tensor4D];
      const proposal = tf.tanh(this.candidate.apply(tf.concat([frames[k]!, tf.mul(r, state)], 3) as tf.Tensor4D));
      state = tf.add(tf.mul(tf.sub(1, z), state), tf.mul(z, proposal)) as tf.Tensor4D;
      states.push(state);
    }
    let d = tf.stack(states, 1) as tf.Tensor5D;
    d = this.decoder[0]!.apply(d, mode);
    d = this.attention.apply(d);
    for (const block of this.decoder.slice(1)) d = block.apply(d, mode);
    return tf.tanh(perFrame(this.outConv, tf.relu(this.outNorm.apply(d, mode))));
  }
}

/** φ for a configuration: the paper's generator, its 2D (static) form, or the recurrent one. */
export function makeGenerator(config: GanConfig, seed: number): Generator | RecurrentGenerator {
  return config.variant === 'recurrent' ? new RecurrentGenerator(config, seed) : new Generator(config, seed);
}


/** Channel plan of both discriminators: C, 2C, 4C, 8C, 8C, 8C at stride 2, then 8C and 1 at stride 1. */
export function discriminatorPlan(c: GanConfig): Array<{ out: number; stride: number }> {
  const C = c.base;
  return [
    ...[C, 2 * C, 4 * C, 8 * C, 8 * C, 8 * C].map((out) => ({ out, stride: 2 })),
    { out: 8 * C, stride: 1 },
    { out: 1, stride: 1 },
  ];
}

/** PatchGAN with LeakyReLU 0.2 between layers and none after the last; convolutions with bias. */
abstract class PatchDiscriminator extends Network {
  private readonly layers: SNConv[];

  constructor(name: string, dims: 2 | 3, config: GanConfig, seed: number) {
    super(name, seed);
    let inChannels = config.channels;
    this.layers = discriminatorPlan(config).map(({ out, stride }, k) => {
      const conv = new SNConv(this.params, `conv${k + 1}`, { dims, inChannels, outChannels: out, kernel: 3, stride, bias: true });
      inChannels = out;
      return conv;
    });
  }

  protected get convs(): SNConv[] {
    return this.layers;
  }

  protected run<T extends tf.Tensor4D | tf.Tensor5D>(x: T): T {
    let h = x;
    this.layers.forEach((layer, k) => {
      h = layer.apply(h);
      if (k < this.layers.length - 1) h = tf.leakyRelu(h, 0.2);
    });
    return h;
  }
}

/** D_f: frames [N, H, W, C] → one score per output patch [N, h, w]. */
export class FrameDiscriminator extends PatchDiscriminator {
  constructor(config: GanConfig, seed: number) {
    super('frame-discriminator', 2, config, seed);
  }

  apply(frames: tf.Tensor4D): tf.Tensor {
    return this.run(frames);
  }
}

/** D_s: clips [B, T', H, W, C] → one score per clip [B] (the output map summed). */
export class SequenceDiscriminator extends PatchDiscriminator {
  constructor(config: GanConfig, seed: number) {
    super('sequence-discriminator', 3, config, seed);
  }

  apply(clips: tf.Tensor5D): tf.Tensor1D {
    return tf.sum(this.run(clips), [1, 2, 3, 4]);
  }
}

/** Trainable parameters of each network at `config`, without allocating any of them. */
export function parameterCounts(config: GanConfig): { generator: number; frameDiscriminator: number; sequenceDiscriminator: number } {
  const conv = (taps: number, i: number, o: number, bias: boolean): number => taps * i * o + (bias ? o : 0);
  const bn = (ch: number): number => 2 * ch;
  const taps = config.variant ? 9 : 27;
  const block = ([i, o]: [number, number]): number => bn(i) + conv(taps, i, o, false) + bn(o) + conv(taps, o, o, false) + (i !== o ? conv(1, i, o, false) : 0);
  const attention = (a: number): number => {
    const { key, value } = attentionWidths(a);
    return conv(1, a, key, false) * 2 + conv(1, a, value, false) + conv(1, value, a, false) + 1;
  };
  let generator = 0;
  if (config.variant === 'recurrent') {
    const { encoder, hidden, decoder } = recurrentPlan(config);
    const both = encoder.at(-1)![1] + hidden;
    generator += [...encoder, ...decoder].reduce((n, b) => n + block(b), 0) + conv(9, both, 2 * hidden, true) + conv(9, both, hidden, true) + attention(decoder[0]![1]);
  } else {
    generator += generatorPlan(config).blocks.reduce((n, b) => n + block(b), 0) + attention(2 * config.base);
  }
  generator += bn(config.base) + conv(taps, config.base, config.channels, true);
  const disc = (taps: number): number => {
    let n = 0;
    let i = config.channels;
    for (const { out } of discriminatorPlan(config)) {
      n += conv(taps, i, out, true);
      i = out;
    }
    return n;
  };
  return { generator, frameDiscriminator: disc(9), sequenceDiscriminator: config.variant === 'static' ? 0 : disc(27) };
}

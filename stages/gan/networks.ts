/**
 * The three networks of the method (method.md §3): the generator φ (3D residual blocks, per-frame
 * self-attention, batch norm, tanh), the frame discriminator D_f (2D PatchGAN) and the sequence
 * discriminator D_s (3D PatchGAN, temporal stride 1, output map summed to one score per clip).
 * Spectral normalisation on every convolution, weights N(0, 0.02), biases 0.
 *
 * Tensors are channels-last: clips [B, T, H, W, C], frames [N, H, W, C], values in [−1, 1].
 */
import * as tf from '@tensorflow/tfjs-core';
import { BatchNorm, FrameAttention, ParamStore, ResBlock3d, SNConv, attentionWidths, type Mode } from './layers.ts';

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
  private readonly blocks: ResBlock3d[];
  private readonly attention: FrameAttention;
  private readonly attentionAfter: number;
  private readonly outNorm: BatchNorm;
  private readonly outConv: SNConv;

  constructor(readonly config: GanConfig, seed: number) {
    super('generator', seed);
    const plan = generatorPlan(config);
    this.blocks = plan.blocks.map(([i, o], k) => new ResBlock3d(this.params, `block${k + 1}`, i, o));
    this.attentionAfter = plan.attentionAfter;
    this.attention = new FrameAttention(this.params, 'attention', 2 * config.base);
    this.outNorm = new BatchNorm(this.params, 'out-bn', config.base, config.meanOffset ? MEAN_OFFSET_GAMMA : 1);
    this.outConv = new SNConv(this.params, 'out', { dims: 3, inChannels: config.base, outChannels: config.channels, kernel: 3, bias: true });
  }

  protected get convs(): SNConv[] {
    return [...this.blocks.flatMap((b) => b.convs), ...this.attention.convs, this.outConv];
  }

  /**
   * φ(y) for observed clips `y` [B, T, H, W, C] in [−1, 1]. With a mean offset, the masks `m`
   * [B, T, H, W, 1] (1 = visible) give each clip's visible mean μ per channel (0 where nothing is visible).
   */
  apply(y: tf.Tensor5D, mode: Mode, m?: tf.Tensor5D): tf.Tensor5D {
    let offset: tf.Tensor | undefined;
    if (this.config.meanOffset) {
      if (!m) throw new Error('a generator with a mean offset needs the masks');
      const visible = tf.sum(m, [1, 2, 3], true);
      const mean = tf.div(tf.sum(tf.mul(y, m), [1, 2, 3], true), tf.maximum(visible, 1));
      offset = tf.atanh(tf.clipByValue(mean, -0.99, 0.99));
    }
    let h = y;
    this.blocks.forEach((block, k) => {
      h = block.apply(h, mode);
      if (k + 1 === this.attentionAfter) h = this.attention.apply(h);
    });
    const out = this.outConv.apply(tf.relu(this.outNorm.apply(h, mode)));
    return tf.tanh(offset ? (tf.add(out, offset) as tf.Tensor5D) : out);
  }
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
  const { blocks } = generatorPlan(config);
  let generator = 0;
  for (const [i, o] of blocks) generator += bn(i) + conv(27, i, o, false) + bn(o) + conv(27, o, o, false) + (i !== o ? conv(1, i, o, false) : 0);
  const a = 2 * config.base;
  const { key, value } = attentionWidths(a);
  generator += conv(1, a, key, false) * 2 + conv(1, a, value, false) + conv(1, value, a, false) + 1;
  generator += bn(config.base) + conv(27, config.base, config.channels, true);
  const disc = (taps: number): number => {
    let n = 0;
    let i = config.channels;
    for (const { out } of discriminatorPlan(config)) {
      n += conv(taps, i, out, true);
      i = out;
    }
    return n;
  };
  return { generator, frameDiscriminator: disc(9), sequenceDiscriminator: disc(27) };
}

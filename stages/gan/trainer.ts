/**
 * One training iteration of the unsupervised inpainting GAN (method.md §2, §4) and everything a
 * run must carry from one iteration to the next: the three networks, their spectral-norm vectors
 * and batch-norm statistics, both Adam optimisers, the fresh-mask generator, the step count, the
 * learning-rate schedule and the data position. `snapshot()` / `restore()` turn all of it into a
 * checkpoint and back, so a resumed run repeats an uninterrupted one.
 *
 * Per iteration, as the official code: x̂ = φ(y)·(1−m) + y·m; fresh masks m̂; ŷ = x̂·m̂ + c·(1−m̂);
 * one G step on the hinge loss relu(1 − D_s(ŷ)) + relu(1 − D_f(ŷ)); then two D steps on the same
 * ŷ (detached) with relu(1 − D(y)) + relu(1 + D(ŷ)) for each discriminator. D_s sees frame
 * differences for time-dependent occlusions. Adam 1e-4, β = (0, 0.999); the learning rate is
 * multiplied by 0.99 every 50 iterations.
 *
 * The clean clips are never an input here.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CheckpointContent, NamedArray } from '../../pipeline/checkpoint.ts';
import { assertBackendHealthy, deviceFailure } from '../../pipeline/backend.ts';
import type { RandomState } from '../random.ts';
import type { MaskSampler } from '../occlusion/process.ts';
import { Adam } from './adam.ts';
import type { SharedAllReduce } from './allreduce.ts';
import { FrameDiscriminator, Generator, RecurrentGenerator, SequenceDiscriminator, makeGenerator, type GanConfig, type Network } from './networks.ts';

export interface TrainerOptions {
  readonly config: GanConfig;
  /** Seeds the weights' initialisation. */
  readonly seed: number;
  /** The occlusion's fill value c in the model's range [−1, 1]. */
  readonly fill: number;
  /** Whether D_s sees frame differences (Raindrops, Moving-Vertical-Bar, Cloud) or raw frames. */
  readonly timeDependent: boolean;
  /** Draws the fresh masks m̂; its state is part of the checkpoint. */
  readonly sampler: Pick<MaskSampler, 'sample' | 'state'>;
  /**
   * Data-parallel training (parallel.ts): gradients and the step's statistics are averaged with
   * the other thread's, weighted by clips, before they are used, so both keep identical weights.
   */
  readonly parallel?: SharedAllReduce;
  /** Default 1e-4 (the paper's, for G and the discriminators alike). */
  readonly learningRate?: number;
  /**
   * The discriminators' own learning rate, when it differs from G's (a two time-scale update,
   * Heusel et al. 2017, as SAGAN trains): default `learningRate`. Decays on the same schedule.
   */
  readonly discriminatorLearningRate?: number;
  /** Multiply the learning rate by `decay` every `decayEvery` iterations. Defaults 0.99 and 50. */
  readonly decay?: number;
  readonly decayEvery?: number;
  /** D steps per G step. Default 2. */
  readonly discriminatorSteps?: number;
  /**
   * Weight λ of a self-supervised fill term that is not in the paper (default 0: the paper's
   * model exactly). When λ > 0 the G step also hides more of each observation with the fresh
   * masks, y' = y·m̂ + c·(1−m̂), and scores G's fill against the observation on the pixels it
   * showed and y' hides: mean |x̂(y') − y| over m·(1−m̂). Only observed pixels are compared, so
   * training still never sees clean data. It teaches G early that occluded-looking pixels are holes
   * to fill from their context, which short CPU runs need (the demo); see the README.
   */
  readonly selfSupervisedWeight?: number;
  /**
   * β of an exponential moving average of G's weights, a ← β·a + (1 − β)·w after every G step
   * (Polyak averaging, as BigGAN and StyleGAN evaluate with); `inpaint` then fills with the
   * averaged weights, which smooths out the step-to-step noise of a short GAN run. Default 0: off,
   * `inpaint` uses the weights as trained. The average is part of the checkpoint.
   */
  readonly generatorAverage?: number;
  /**
   * The paper's supervised upper bounds (absent: the unsupervised model). Each batch then holds B
   * observed clips followed by B clean ones (see `frameBatches`' `clean` option); the
   * discriminators compare clean clips with G's completions x̂ (no re-occlusion), and `paired`
   * adds `l1Weight`·mean |x̂ − x| to G's loss, x the observation's own clean clip. `unpaired`
   * clean clips are other clips than the observations (the graph draws them from a second shuffle).
   */
  readonly supervision?: 'paired' | 'unpaired';
  /** Weight of the paired model's L1 term. Default 100 (pix2pix's; the paper does not state it). */
  readonly l1Weight?: number;
}

/** What one iteration reports. Losses are the values before the iteration's updates. */
export interface StepRecord {
  readonly step: number;
  readonly lossG: number;
  /** Discriminator loss (D_s + D_f) of the last D step. */
  readonly lossD: number;
  /** The auxiliary L1 term before weighting: the self-supervised fill term, or the paired model's L1 to the clean clip (0 when there is none). */
  readonly lossSelf: number;
  /** Mean scores of the last D step, on real observations and re-occluded generations. */
  readonly dsReal: number;
  readonly dsFake: number;
  readonly dfReal: number;
  readonly dfFake: number;
  /** Global L2 norms of the G gradient and of the last D gradient. */
  readonly gradNormG: number;
  readonly gradNormD: number;
  readonly learningRate: number;
  readonly stepMs: number;
  readonly clipsPerSecond: number;
  /** Clips consumed so far (the data position a resume starts from). */
  readonly position: number;
}

/** The JSON part of a checkpoint. */
export interface TrainerState {
  readonly config: GanConfig;
  readonly seed: number;
  readonly position: number;
  readonly learningRate: number;
  readonly adamIterations: { readonly g: number; readonly d: number };
  /** β of the generator's weight average, when one is kept (its arrays are `g-average/<name>`). */
  readonly generatorAverage?: number;
  readonly sampler: RandomState;
}

/**
 * A loss, a gradient norm or the weights after the update were NaN or infinite: the weights are no
 * longer usable and must not be checkpointed.
 */
export class NonFiniteLossError extends Error {
  constructor(readonly step: number, readonly losses: Record<string, number>) {
    super(`training diverged at step ${step}: ${Object.entries(losses).map(([k, v]) => `${k} = ${v}`).join(', ')} (the last good checkpoint is kept; try a lower learning rate)`);
    this.name = 'NonFiniteLossError';
  }
}

/** A step that needed more memory than the backend has (a wasm heap stops at 4 GiB). */
export class OutOfMemoryError extends Error {
  constructor(config: GanConfig, batch: number, cause: unknown) {
    const { frames, height, width, base } = config;
    // The generator's widest tensor: the stacked input of its 3D convolutions at full resolution (3 × 16C channels).
    const largest = batch * frames * height * width * 48 * base * 4;
    super(
      `out of memory in a training step (${(cause as Error).message}): a batch of ${batch} clips of ${frames}×${height}×${width} at C = ${base} holds tensors of ${(largest / 2 ** 30).toFixed(1)} GiB and more; the wasm backend's memory stops at 4 GiB (use a smaller --batch, or a GPU backend)`,
      { cause },
    );
    this.name = 'OutOfMemoryError';
  }
}

/** Whether an error is a backend running out of memory (wasm's heap, or an allocation refused). */
export function isOutOfMemory(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return (err instanceof Error && err.name === 'RuntimeError' && /memory access out of bounds|out of memory/i.test(message)) || /Array buffer allocation failed|Out of memory|Cannot enlarge memory|Aborted\(OOM\)/i.test(message);
}

const hingeReal = (scores: tf.Tensor): tf.Scalar => tf.mean(tf.relu(tf.sub(1, scores)));
const hingeFake = (scores: tf.Tensor): tf.Scalar => tf.mean(tf.relu(tf.add(1, scores)));

export class GanTrainer {
  readonly generator: Generator | RecurrentGenerator;
  readonly frameDiscriminator: FrameDiscriminator;
  /** Absent in the static ablation, which has no D_s. */
  readonly sequenceDiscriminator?: SequenceDiscriminator;
  private readonly adamG: Adam;
  private readonly adamD: Adam;
  private readonly discriminatorVariables: tf.Variable[];
  /** Iterations done. */
  step = 0;
  /** Clips consumed. */
  position = 0;
  /** False once a loss was not finite: such weights are never checkpointed. */
  healthy = true;
  private readonly o: Required<Omit<TrainerOptions, 'sampler' | 'parallel' | 'supervision'>> & Pick<TrainerOptions, 'sampler' | 'parallel' | 'supervision'>;

  constructor(options: TrainerOptions) {
    const learningRate = options.learningRate ?? 1e-4;
    this.o = { decay: 0.99, decayEvery: 50, discriminatorSteps: 2, selfSupervisedWeight: 0, generatorAverage: 0, l1Weight: 100, ...options, learningRate, discriminatorLearningRate: options.discriminatorLearningRate ?? learningRate };
    const { config, seed } = options;
    if (options.supervision && (options.selfSupervisedWeight ?? 0) > 0) throw new Error('the supervised models have no self-supervised term');
    this.generator = makeGenerator(config, seed);
    this.frameDiscriminator = new FrameDiscriminator(config, seed);
    if (config.variant !== 'static') this.sequenceDiscriminator = new SequenceDiscriminator(config, seed);
    this.adamG = new Adam(this.generator.params.trainable);
    const dVars = new Map([...(this.sequenceDiscriminator ? prefixed(this.sequenceDiscriminator) : []), ...prefixed(this.frameDiscriminator)]);
    this.discriminatorVariables = [...dVars.values()];
    this.adamD = new Adam(dVars);
    if (this.o.generatorAverage > 0) {
      this.average = new Map([...this.generator.params.trainable].map(([name, v]) => [name, tf.variable(v.clone(), false)]));
    }
  }

  /** The moving average of G's weights, when `generatorAverage` > 0. */
  private readonly average?: Map<string, tf.Variable>;

  get config(): GanConfig {
    return this.o.config;
  }

  /** The learning rate of the next iteration. */
  get learningRate(): number {
    return this.o.learningRate * this.decayFactor;
  }

  /** The discriminators' learning rate of the next iteration. */
  get discriminatorLearningRate(): number {
    return this.o.discriminatorLearningRate * this.decayFactor;
  }

  private get decayFactor(): number {
    return this.o.decay ** Math.floor(this.step / this.o.decayEvery);
  }

  /** x̂ = φ(y)·(1−m) + y·m: visible pixels copied, holes filled. */
  private complete(y: tf.Tensor5D, m: tf.Tensor5D, training: boolean): tf.Tensor5D {
    const phi = this.generator.apply(y, { training }, m);
    return tf.add(tf.mul(phi, tf.sub(1, m)), tf.mul(y, m));
  }

  /** What D_s sees: frame differences for time-dependent processes, else the frames. */
  private sequenceInput(x: tf.Tensor5D): tf.Tensor5D {
    if (!this.o.timeDependent) return x;
    const [b, t, h, w, c] = x.shape;
    if (t < 2) throw new Error('frame differences need clips of at least 2 frames');
    const frames = tf.reshape(x, [b, t, h * w * c]);
    const next = tf.slice(frames, [0, 1, 0], [b, t - 1, h * w * c]);
    const previous = tf.slice(frames, [0, 0, 0], [b, t - 1, h * w * c]);
    return tf.reshape(tf.sub(next, previous), [b, t - 1, h, w, c]);
  }

  private frames(x: tf.Tensor5D): tf.Tensor4D {
    const [b, t, h, w, c] = x.shape;
    return tf.reshape(x, [b * t, h, w, c]);
  }

  /**
   * One iteration on observed clips `y` [B, T, H, W, C] in [−1, 1] with masks `m` [B, T, H, W, 1].
   * Resolves once the step's losses are read back (on a GPU backend, when the device is done).
   * @throws NonFiniteLossError when a loss is NaN or infinite (and marks the trainer unhealthy).
   * @throws DeviceLostError when the backend's device failed during the step (idem).
   */
  async trainStep(input: tf.Tensor5D, masks: tf.Tensor5D, part?: { readonly fresh: Uint8Array; readonly clips: number }): Promise<StepRecord> {
    if (!this.healthy) throw new Error('the trainer diverged earlier; restore a checkpoint first');
    const started = performance.now();
    const supervised = this.o.supervision !== undefined;
    if (supervised && input.shape[0] % 2) throw new Error(`a supervised batch holds observed clips then as many clean ones; got ${input.shape[0]} clips`);
    const batch = supervised ? input.shape[0] / 2 : input.shape[0];
    const y = input;
    const { frames, height, width } = this.config;
    if (y.shape[1] !== frames || y.shape[2] !== height || y.shape[3] !== width || y.shape[4] !== this.config.channels) {
      throw new Error(`batch of clips [${y.shape.slice(1).join(', ')}] does not fit the model's [${frames}, ${height}, ${width}, ${this.config.channels}]`);
    }
    const learningRate = this.learningRate;
    // In data-parallel training the leader draws every clip's fresh mask and hands out the parts.
    // (The supervised models re-occlude nothing.)
    const fresh = supervised ? new Uint8Array(0) : (part?.fresh ?? this.o.sampler.sample(batch));
    const parallel = this.o.parallel;
    const average = (grads: tf.NamedTensorMap): tf.NamedTensorMap => {
      if (!parallel) return grads;
      const names = Object.keys(grads);
      const values = names.map((n) => grads[n]!.dataSync() as Float32Array);
      const flat = new Float32Array(values.reduce((a, v) => a + v.length, 0));
      let at = 0;
      for (const v of values) (flat.set(v, at), (at += v.length));
      const mean = parallel.reduce(flat, batch);
      const out: tf.NamedTensorMap = {};
      at = 0;
      names.forEach((n, i) => {
        out[n] = tf.tensor(mean.subarray(at, (at += values[i]!.length)), grads[n]!.shape);
      });
      return out;
    };
    // Tensors that must outlive the tidy of the gradient tape they are made in; disposed below.
    const kept: tf.Tensor[] = [];
    const keep = <T extends tf.Tensor>(t: T): T => (kept.push(t), tf.keep(t));
    let scalars: tf.Tensor;
    try {
      scalars = tf.tidy(() => {
        // A supervised batch: the observations, then the clean clips (whose masks are all 1).
        const [y, x] = supervised ? (tf.split(input, 2) as [tf.Tensor5D, tf.Tensor5D]) : [input, undefined];
        const m = supervised ? (tf.slice(masks, [0, 0, 0, 0, 0], [batch, -1, -1, -1, -1]) as tf.Tensor5D) : masks;
        const fill = this.o.fill;
        const ds = this.sequenceDiscriminator;
        let yHat: tf.Tensor5D | undefined;

        this.generator.powerIterate();
        ds?.powerIterate();
        this.frameDiscriminator.powerIterate();
        const weight = this.o.selfSupervisedWeight;
        let selfLoss: tf.Scalar = tf.scalar(0);
        // G's adversarial term on what the discriminators see of its output.
        const fools = (fake: tf.Tensor5D): tf.Scalar => {
          const frameTerm = hingeReal(this.frameDiscriminator.apply(this.frames(fake)));
          return ds ? tf.add(hingeReal(ds.apply(this.sequenceInput(fake))), frameTerm) : frameTerm;
        };
        const gStep = tf.variableGrads(() => {
          if (x) {
            // Supervised: the discriminators see x̂ itself against clean clips; paired adds L1 to x.
            const xHat = this.complete(y, m, true);
            yHat = keep(xHat);
            const adversarial = fools(xHat);
            if (this.o.supervision !== 'paired') return adversarial;
            selfLoss = keep(tf.mean(tf.abs(tf.sub(xHat, x))) as tf.Scalar);
            return tf.add(adversarial, tf.mul(this.o.l1Weight, selfLoss)) as tf.Scalar;
          }
          const mHat = tf.tensor5d(Float32Array.from(fresh), [batch, frames, height, width, 1]);
          let xHat: tf.Tensor5D;
          if (weight > 0) {
            // One pass of G over the observations and their further-occluded copies (shared batch statistics).
            const hidden = tf.sub(1, mHat);
            const yMore = tf.add(tf.mul(y, mHat), tf.mul(fill, hidden)) as tf.Tensor5D;
            const both = this.complete(tf.concat([y, yMore]) as tf.Tensor5D, tf.concat([m, tf.mul(m, mHat)]) as tf.Tensor5D, true);
            xHat = tf.slice(both, [0, 0, 0, 0, 0], [batch, -1, -1, -1, -1]);
            const filled = tf.slice(both, [batch, 0, 0, 0, 0], [batch, -1, -1, -1, -1]);
            const scored = tf.mul(m, hidden);
            const count = tf.maximum(tf.mul(tf.sum(scored), this.config.channels), 1);
            selfLoss = keep(tf.div(tf.sum(tf.mul(tf.abs(tf.sub(filled, y)), scored)), count) as tf.Scalar);
          } else {
            xHat = this.complete(y, m, true);
          }
          const reoccluded = tf.add(tf.mul(xHat, mHat), tf.mul(fill, tf.sub(1, mHat))) as tf.Tensor5D;
          yHat = keep(reoccluded);
          const adversarial = fools(reoccluded);
          return (weight > 0 ? tf.add(adversarial, tf.mul(weight, selfLoss)) : adversarial) as tf.Scalar;
        }, [...this.generator.params.trainable.values()]);
        const gGrads = average(gStep.grads);
        this.adamG.apply(gGrads, learningRate);
        if (this.average) {
          const beta = this.o.generatorAverage;
          for (const [name, v] of this.generator.params.trainable) {
            const a = this.average.get(name)!;
            a.assign(tf.add(tf.mul(a, beta), tf.mul(v, 1 - beta)));
          }
        }
        const gradNormG = globalNorm(gGrads);

        const fake = yHat!;
        // Real: the observations (clean clips for the supervised models); fake: G's re-occluded
        // completions (its completions). Real and fake go through each discriminator as one batch:
        // the discriminators have no batch norm, so every score is what a separate pass gives, with
        // half the calls, one weight normalisation per layer and twice the rows per convolution.
        const real = x ?? y;
        const bothSeq = ds && (tf.concat([this.sequenceInput(real), this.sequenceInput(fake)]) as tf.Tensor5D);
        const bothFrames = tf.concat([this.frames(real), this.frames(fake)]) as tf.Tensor4D;
        let last: { loss: tf.Scalar; scores: tf.Scalar[]; gradNorm: tf.Scalar } | undefined;
        for (let k = 0; k < this.o.discriminatorSteps; k++) {
          ds?.powerIterate();
          this.frameDiscriminator.powerIterate();
          let scores: tf.Scalar[] = [];
          const dStep = tf.variableGrads(() => {
            const [sReal, sFake] = ds ? (tf.split(ds.apply(bothSeq!), 2) as [tf.Tensor, tf.Tensor]) : [tf.zeros([1]), tf.zeros([1])];
            const [fReal, fFake] = tf.split(this.frameDiscriminator.apply(bothFrames), 2) as [tf.Tensor, tf.Tensor];
            scores = [sReal, sFake, fReal, fFake].map((s) => keep(tf.mean(s)));
            const frameTerms = [hingeReal(fReal), hingeFake(fFake)];
            return tf.addN(ds ? [hingeReal(sReal), hingeFake(sFake), ...frameTerms] : frameTerms);
          }, this.discriminatorVariables);
          const dGrads = average(dStep.grads);
          this.adamD.apply(dGrads, this.discriminatorLearningRate);
          last = { loss: dStep.value, scores, gradNorm: globalNorm(dGrads) };
        }
        const d = last!;
        // Σ of every weight after the updates: finite exactly when no weight is NaN or infinite
        // (or so large that their sum overflows, which is no usable model either).
        const weights = [...this.generator.params.trainable.values(), ...this.discriminatorVariables];
        const weightSum = tf.addN(weights.map((v) => tf.sum(v)));
        return tf.stack([gStep.value, d.loss, ...d.scores, gradNormG, d.gradNorm, selfLoss, weightSum]);
      });
    } catch (err) {
      // The weights may be half updated: nothing of this trainer is checkpointed any more.
      this.healthy = false;
      // A batch too large for the backend's memory: one line with what it needed.
      throw isOutOfMemory(err) ? new OutOfMemoryError(this.config, batch, err) : err;
    }
    let local: Float32Array;
    try {
      local = (await scalars.data()) as Float32Array;
      assertBackendHealthy();
    } catch (err) {
      this.healthy = false;
      throw (await deviceFailure()) ?? err;
    } finally {
      tf.dispose([scalars, ...kept]);
    }
    // Losses and scores are means over the clips of both parts (gradient norms are the same on both).
    const [lossG, lossD, dsReal, dsFake, dfReal, dfFake, gradNormG, gradNormD, lossSelf, weightSum] = Array.from(parallel ? parallel.reduce(local, batch) : local);
    const clips = part?.clips ?? batch;
    this.step += 1;
    this.position += clips;
    const losses = { lossG: lossG!, lossD: lossD! };
    const checked = { ...losses, gradNormG: gradNormG!, gradNormD: gradNormD!, 'sum of the weights': weightSum! };
    if (!Object.values(checked).every(Number.isFinite)) {
      this.healthy = false;
      throw new NonFiniteLossError(this.step, Object.fromEntries(Object.entries(checked).filter(([, v]) => !Number.isFinite(v))));
    }
    const stepMs = performance.now() - started;
    return {
      step: this.step,
      ...losses,
      lossSelf: lossSelf!,
      dsReal: dsReal!,
      dsFake: dsFake!,
      dfReal: dfReal!,
      dfFake: dfFake!,
      gradNormG: gradNormG!,
      gradNormD: gradNormD!,
      learningRate,
      stepMs,
      clipsPerSecond: (1000 * clips) / stepMs,
      position: this.position,
    };
  }

  /**
   * x̂ for observed clips, in inference mode (running batch-norm statistics, no state changes),
   * with the averaged weights of G when an average is kept.
   */
  inpaint(y: tf.Tensor5D, m: tf.Tensor5D): tf.Tensor5D {
    if (!this.average) return tf.tidy(() => this.complete(y, m, false));
    const trainable = [...this.generator.params.trainable];
    const live = trainable.map(([, v]) => tf.keep(v.clone()));
    try {
      for (const [name, v] of trainable) v.assign(this.average.get(name)!);
      return tf.tidy(() => this.complete(y, m, false));
    } finally {
      trainable.forEach(([, v], i) => v.assign(live[i]!));
      tf.dispose(live);
    }
  }

  private networks(): Network[] {
    return [this.generator, ...(this.sequenceDiscriminator ? [this.sequenceDiscriminator] : []), this.frameDiscriminator];
  }

  /**
   * Everything an exact resume needs, as a checkpoint's content (read back from the backend's
   * memory, asynchronously: a GPU backend under Node has no synchronous read).
   * @throws DeviceLostError when the device failed, so that no garbage is checkpointed.
   */
  async snapshot(): Promise<CheckpointContent<TrainerState>> {
    const variables: Array<[string, tf.Variable]> = [];
    for (const net of this.networks()) {
      for (const [name, v] of [...net.params.trainable, ...net.params.state]) variables.push([`${net.params.network}/${name}`, v]);
    }
    for (const [name, v] of this.adamG.state) variables.push([`adam-g/${name}`, v]);
    for (const [name, v] of this.adamD.state) variables.push([`adam-d/${name}`, v]);
    for (const [name, v] of this.average ?? []) variables.push([`g-average/${name}`, v]);
    let values: Float32Array[];
    try {
      values = await Promise.all(variables.map(([, v]) => v.data() as Promise<Float32Array>));
    } catch (err) {
      throw (await deviceFailure()) ?? err;
    }
    assertBackendHealthy();
    const arrays = new Map<string, NamedArray>(variables.map(([name, v], i) => [name, { shape: v.shape, values: values[i]! }]));
    const state: TrainerState = {
      config: this.config,
      seed: this.o.seed,
      position: this.position,
      learningRate: this.learningRate,
      adamIterations: { g: this.adamG.iterations, d: this.adamD.iterations },
      sampler: this.o.sampler.state,
      ...(this.average && { generatorAverage: this.o.generatorAverage }),
    };
    return { step: this.step, state, arrays };
  }

  /** Continues from a snapshot of a trainer with the same configuration. */
  restore(content: CheckpointContent<TrainerState>): void {
    const { state } = content;
    if (JSON.stringify(state.config) !== JSON.stringify(this.config)) {
      throw new Error(`the checkpoint's model ${JSON.stringify(state.config)} differs from this run's ${JSON.stringify(this.config)}`);
    }
    const set = (name: string, v: tf.Variable): void => {
      const a = content.arrays.get(name);
      if (!a) throw new Error(`the checkpoint lacks "${name}"`);
      if (a.values.length !== v.size) throw new Error(`checkpoint array "${name}" has ${a.values.length} values, the model needs ${v.size}`);
      tf.tidy(() => v.assign(tf.tensor(a.values, v.shape)));
    };
    for (const net of this.networks()) {
      for (const [name, v] of [...net.params.trainable, ...net.params.state]) set(`${net.params.network}/${name}`, v);
    }
    for (const [name, v] of this.adamG.state) set(`adam-g/${name}`, v);
    for (const [name, v] of this.adamD.state) set(`adam-d/${name}`, v);
    for (const [name, v] of this.average ?? []) set(`g-average/${name}`, v);
    this.adamG.iterations = state.adamIterations.g;
    this.adamD.iterations = state.adamIterations.d;
    this.o.sampler.state = state.sampler;
    this.step = content.step;
    this.position = state.position;
    this.healthy = true;
  }

  dispose(): void {
    try {
      for (const v of this.average?.values() ?? []) v.dispose();
      for (const net of this.networks()) net.dispose();
      this.adamG.dispose();
      this.adamD.dispose();
    } catch (err) {
      // After a failed step (a wasm heap that ran out) freeing can fail too; the step's error is the one reported.
      if (this.healthy) throw err;
    }
  }
}

/** A network's trainable variables keyed `<network>/<name>`. */
function prefixed(net: Network): Array<[string, tf.Variable]> {
  return [...net.params.trainable].map(([name, v]) => [`${net.params.network}/${name}`, v]);
}

function globalNorm(grads: tf.NamedTensorMap): tf.Scalar {
  return tf.sqrt(tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g))))) as tf.Scalar;
}

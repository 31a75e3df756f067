/**
 * Evaluation on a held-out split: the model and the classical baselines fill the same observed
 * clips, and each is scored against the clean truth (masked MAE, PSNR, SSIM, …, FID / FVD).
 * The clips stream through a group at a time, so a whole test split is scored in bounded memory.
 * Baselines do not change during training, so their scores are computed once; the model is scored
 * each time it is asked.
 *
 * Clips here are float arrays in [0, 1] (see metrics.ts). {@link inpaintClips} runs a trainer's
 * generator over such clips in batches.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ClipShape, Pixels } from '../../pipeline/frame-batch.ts';
import { BASELINES, type Baseline } from './baselines.ts';
import { SetDistanceAccumulator, type FeatureModel } from './features.ts';
import { MetricTable, clipMetrics, type MetricRow, type PhysicalScale } from './metrics.ts';

export interface HeldOutClip {
  readonly id: string;
  /** Observed pixels in [0, 1] (hidden ones at the fill value). */
  readonly observed: Float32Array;
  /** T·H·W, 1 = visible. */
  readonly mask: Uint8Array;
  /** Clean pixels in [0, 1]. */
  readonly truth: Float32Array;
  /** The data's physical unit per unit of [0, 1], when it has one (SST: °C). */
  readonly physical?: PhysicalScale;
}

/** Pixels of a data range as floats in [0, 1]. */
export function toUnit(pixels: Pixels, range: readonly [number, number]): Float32Array {
  const [lo, hi] = range;
  const scale = 1 / (hi - lo);
  return Float32Array.from(pixels, (v) => (v - lo) * scale);
}

export interface Evaluation {
  /** Method × metric, the model first, then the baselines. */
  readonly rows: MetricRow[];
  /** The first clips scored (at most `pictures`), for pictures. */
  readonly clips: readonly HeldOutClip[];
  /** Every method's filled clips, in the order of `clips`. */
  readonly outputs: ReadonlyMap<string, readonly Float32Array[]>;
  /** How many clips were scored. */
  readonly count: number;
  /** FID / FVD of every method, when feature models were given. */
  readonly sets?: Record<string, Record<string, number>>;
}

export interface HeldOutScorerOptions {
  /** Scored beside the model. Default: DINEOF, temporal interpolation, mean fill. */
  readonly baselines?: ReadonlyArray<readonly [string, Baseline]>;
  /** How many of the first clips are kept with every method's fill, for pictures. Default 8. */
  readonly pictures?: number;
  /** Clips filled and scored at a time. Default 8. */
  readonly group?: number;
}

/**
 * Scores the model and the baselines on held-out clips read as a stream, a group at a time:
 * memory holds a group and the mergeable metric summaries, whatever the number of clips. The
 * baselines do not change during training: their summaries are kept from the first pass, and later
 * passes fill only with the model (the baselines fill again only when FID / FVD need their clips).
 */
export class HeldOutScorer {
  private readonly baselines: ReadonlyArray<readonly [string, Baseline]>;
  private baselineTable?: MetricTable;
  private readonly pictures: number;
  private readonly group: number;

  constructor(readonly shape: ClipShape, o: HeldOutScorerOptions = {}) {
    this.baselines = o.baselines ?? BASELINES;
    this.pictures = o.pictures ?? 8;
    this.group = o.group ?? 8;
  }

  /**
   * @param clips the held-out clips (a stream is read once, in order).
   * @param inpaint the model's fill in [−1, 1] (see {@link inpaintClips}).
   * @param distances Inception / I3D models: FID / FVD of every method too.
   */
  async score(
    clips: AsyncIterable<HeldOutClip> | Iterable<HeldOutClip>,
    inpaint: (y: tf.Tensor5D, m: tf.Tensor5D) => tf.Tensor5D,
    distances?: { readonly fid?: FeatureModel; readonly fvd?: FeatureModel },
    method = 'model',
  ): Promise<Evaluation> {
    const table = new MetricTable();
    const firstPass = !this.baselineTable;
    const baselineTable = this.baselineTable ?? new MetricTable();
    const sets = distances && (distances.fid || distances.fvd) ? new SetDistanceAccumulator(distances, this.shape) : undefined;
    const kept: HeldOutClip[] = [];
    const outputs = new Map<string, Float32Array[]>([[method, []], ...this.baselines.map(([name]) => [name, []] as [string, Float32Array[]])]);
    let count = 0;
    const run = async (group: HeldOutClip[]): Promise<void> => {
      const filled = await inpaintClips(group, this.shape, inpaint);
      filled.forEach((out, i) => table.add(method, clipMetrics(group[i]!.truth, out, group[i]!.mask, this.shape, group[i]!.physical), group[i]!.physical?.unit));
      const keep = Math.max(0, Math.min(group.length, this.pictures - kept.length));
      kept.push(...group.slice(0, keep));
      outputs.get(method)!.push(...filled.slice(0, keep));
      await sets?.add('truth', group.map((c) => c.truth));
      await sets?.add(method, filled);
      for (const [name, fill] of this.baselines) {
        if (!firstPass && !sets && keep === 0) continue;
        const fills = group.map((c) => fill(c.observed, c.mask, this.shape));
        if (firstPass) fills.forEach((out, i) => baselineTable.add(name, clipMetrics(group[i]!.truth, out, group[i]!.mask, this.shape, group[i]!.physical), group[i]!.physical?.unit));
        outputs.get(name)!.push(...fills.slice(0, keep));
        await sets?.add(name, fills);
      }
      count += group.length;
    };
    let group: HeldOutClip[] = [];
    for await (const clip of clips) {
      group.push(clip);
      if (group.length === this.group) (await run(group), (group = []));
    }
    if (group.length > 0) await run(group);
    this.baselineTable = baselineTable;
    table.merge(baselineTable);
    return { rows: table.table(), clips: kept, outputs, count, ...(sets && { sets: sets.distances() }) };
  }
}

/**
 * Fills clips with a generator working in [−1, 1] on [B, T, H, W, C] tensors (for example
 * `GanTrainer.inpaint`), `batch` clips at a time; visible pixels are kept exactly.
 */
export async function inpaintClips(
  clips: readonly HeldOutClip[],
  shape: ClipShape,
  inpaint: (y: tf.Tensor5D, m: tf.Tensor5D) => tf.Tensor5D,
  batch = 4,
): Promise<Float32Array[]> {
  const { frames: T, height: H, width: W, channels: C } = shape;
  const out: Float32Array[] = [];
  for (let start = 0; start < clips.length; start += batch) {
    const group = clips.slice(start, start + batch);
    const filled = tf.tidy(() => {
      const y = tf.tensor5d(concat(group.map((c) => c.observed)), [group.length, T, H, W, C]);
      const m = tf.tensor5d(concat(group.map((c) => Float32Array.from(c.mask))), [group.length, T, H, W, 1]);
      return inpaint(tf.sub(tf.mul(y, 2), 1) as tf.Tensor5D, m);
    });
    let values: Float32Array;
    try {
      values = (await filled.data()) as Float32Array;
    } finally {
      filled.dispose();
    }
    const n = T * H * W * C;
    group.forEach((c, k) => {
      const clip = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const visible = c.mask[Math.floor(i / C)] === 1;
        clip[i] = visible ? c.observed[i]! : Math.min(1, Math.max(0, (values[k * n + i]! + 1) / 2));
      }
      out.push(clip);
    });
  }
  return out;
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

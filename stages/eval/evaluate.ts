/**
 * Evaluation on a held-out split: the model and the classical baselines fill the same observed
 * clips, and each is scored against the clean truth (masked MAE, PSNR, SSIM, …). Baselines do not
 * change during training, so they are computed once; the model is scored each time it is asked.
 *
 * Clips here are float arrays in [0, 1] (see metrics.ts). {@link inpaintClips} runs a trainer's
 * generator over such clips in batches.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ClipShape, Pixels } from '../../pipeline/frame-batch.ts';
import { BASELINES, type Baseline } from './baselines.ts';
import { MetricTable, clipMetrics, type MetricRow } from './metrics.ts';

export interface HeldOutClip {
  readonly id: string;
  /** Observed pixels in [0, 1] (hidden ones at the fill value). */
  readonly observed: Float32Array;
  /** T·H·W, 1 = visible. */
  readonly mask: Uint8Array;
  /** Clean pixels in [0, 1]. */
  readonly truth: Float32Array;
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
  /** Every method's filled clips, in the order of the held-out clips. */
  readonly outputs: ReadonlyMap<string, readonly Float32Array[]>;
}

export class HeldOutEvaluation {
  private readonly baselineTable = new MetricTable();
  private readonly baselineOutputs = new Map<string, Float32Array[]>();

  constructor(
    readonly clips: readonly HeldOutClip[],
    readonly shape: ClipShape,
    baselines: ReadonlyArray<readonly [string, Baseline]> = BASELINES,
  ) {
    for (const [name, fill] of baselines) {
      const outputs = clips.map((c) => fill(c.observed, c.mask, shape));
      this.baselineOutputs.set(name, outputs);
      outputs.forEach((out, i) => this.baselineTable.add(name, clipMetrics(clips[i]!.truth, out, clips[i]!.mask, shape)));
    }
  }

  /** Scores the model's filled clips (same order as `clips`) beside the baselines. */
  score(model: readonly Float32Array[], method = 'model'): Evaluation {
    if (model.length !== this.clips.length) throw new Error(`${model.length} filled clips for ${this.clips.length} held-out clips`);
    const table = new MetricTable();
    model.forEach((out, i) => table.add(method, clipMetrics(this.clips[i]!.truth, out, this.clips[i]!.mask, this.shape)));
    table.merge(this.baselineTable);
    return { rows: table.table(), outputs: new Map<string, readonly Float32Array[]>([[method, model], ...this.baselineOutputs]) };
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

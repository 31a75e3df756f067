/**
 * Metrics and baselines: SSIM against a direct, independent computation of Wang et al.'s formula
 * (2D Gaussian-weighted window statistics at every position, no separable filtering) and closed
 * forms; PSNR and masked MAE on hand-worked inputs; summaries that do not depend on batching;
 * DINEOF recovering a low-rank sequence; interpolation exact on linear-in-time data; a held-out
 * split scored as a stream equal to the same clips scored at once, with errors in physical units.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../pipeline/backend.ts';
import { dineof, meanFill, temporalInterpolation } from '../../stages/eval/baselines.ts';
import { HeldOutScorer, type HeldOutClip } from '../../stages/eval/evaluate.ts';
import { MetricTable, RunningMoments, clipMetrics, maskedMae, mse, psnr, ssim, ssimPlane } from '../../stages/eval/metrics.ts';
import { Random } from '../../stages/random.ts';

/** SSIM straight from the definition: an 11×11 Gaussian (σ 1.5) window at every valid position. */
function referenceSsim(a: Float64Array, b: Float64Array, h: number, w: number): number {
  const k = 11;
  const weights: number[] = [];
  let total = 0;
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) total += weights[i * k + j] = Math.exp(-((i - 5) ** 2 + (j - 5) ** 2) / (2 * 1.5 ** 2));
  let sum = 0;
  let count = 0;
  for (let y = 0; y + k <= h; y++) {
    for (let x = 0; x + k <= w; x++) {
      let [ma, mb, va, vb, cab] = [0, 0, 0, 0, 0];
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          const wt = weights[i * k + j]! / total;
          ma += wt * a[(y + i) * w + x + j]!;
          mb += wt * b[(y + i) * w + x + j]!;
        }
      }
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          const wt = weights[i * k + j]! / total;
          const da = a[(y + i) * w + x + j]! - ma;
          const db = b[(y + i) * w + x + j]! - mb;
          va += wt * da * da;
          vb += wt * db * db;
          cab += wt * da * db;
        }
      }
      const [c1, c2] = [0.01 ** 2, 0.03 ** 2];
      sum += ((2 * ma * mb + c1) * (2 * cab + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
      count++;
    }
  }
  return sum / count;
}

const randomPlane = (random: Random, n: number): Float64Array => Float64Array.from({ length: n }, () => random.uniform(0, 1));

describe('metrics', () => {
  it('SSIM equals a direct computation of the definition, is 1 for identical frames, and has the closed form of constant frames', () => {
    const random = Random.fromKey('ssim');
    const [h, w] = [17, 23];
    const a = randomPlane(random, h * w);
    // b: a blurred, noisy, shifted-contrast version of a, so that every term of SSIM matters.
    const b = a.map((v, i) => 0.6 * v + 0.2 * (a[(i + 1) % a.length]! + random.uniform(-0.2, 0.2)));
    const ours = ssimPlane(a, b, h, w);
    assert.ok(Math.abs(ours - referenceSsim(a, b, h, w)) < 1e-12, `${ours} vs ${referenceSsim(a, b, h, w)}`);
    assert.ok(ours > 0.05 && ours < 0.95);
    assert.ok(Math.abs(ssimPlane(a, a, h, w) - 1) < 1e-12);
    const [p, q] = [0.3, 0.7];
    const closed = (2 * p * q + 0.01 ** 2) / (p * p + q * q + 0.01 ** 2);
    assert.ok(Math.abs(ssimPlane(new Float64Array(h * w).fill(p), new Float64Array(h * w).fill(q), h, w) - closed) < 1e-12);
  });

  it('averages SSIM over frames and channels', () => {
    const random = Random.fromKey('ssim-clip');
    const g = { frames: 2, height: 12, width: 12, channels: 3 };
    const n = g.frames * g.height * g.width * g.channels;
    const x = Float32Array.from({ length: n }, () => random.uniform(0, 1));
    const y = Float32Array.from(x, (v) => Math.min(1, v + random.uniform(-0.1, 0.1)));
    let sum = 0;
    for (let t = 0; t < 2; t++) {
      for (let c = 0; c < 3; c++) {
        const plane = (v: Float32Array): Float64Array => Float64Array.from({ length: 144 }, (_, p) => v[(t * 144 + p) * 3 + c]!);
        sum += referenceSsim(plane(x), plane(y), 12, 12);
      }
    }
    assert.ok(Math.abs(ssim(x, y, g) - sum / 6) < 1e-6);
  });

  it('PSNR, MSE and masked MAE on hand-worked values', () => {
    assert.equal(psnr(0.01), 20);
    assert.equal(psnr(0), Infinity);
    assert.equal(mse([0, 0.5, 1, 1], [0, 0.5, 0.5, 0]), (0.25 + 1) / 4);
    // Two pixels of two channels; only the second is hidden: |0.2 − 0.5| and |0.4 − 0.1|.
    assert.ok(Math.abs(maskedMae([0.9, 0.9, 0.2, 0.4], [0, 0, 0.5, 0.1], [1, 0], 2)! - 0.3) < 1e-12);
    assert.equal(maskedMae([0.1], [0.2], [1], 1), undefined);
    const m = clipMetrics(Float32Array.of(0.5, 0.5), Float32Array.of(0.5, 0.25), Uint8Array.of(1, 0), { frames: 1, height: 1, width: 2, channels: 1 });
    assert.equal(m.occluded, 0.5);
    assert.equal(m.mae, 0.25);
  });

  it('summaries are the same whether clips are added one by one or merged from shards of any size', () => {
    const random = Random.fromKey('moments');
    const xs = Array.from({ length: 101 }, () => random.uniform(-3, 5));
    const whole = new RunningMoments();
    xs.forEach((x) => whole.add(x));
    const mean = xs.reduce((a, b) => a + b) / xs.length;
    const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
    assert.ok(Math.abs(whole.mean - mean) < 1e-12 && Math.abs(whole.std - std) < 1e-12);
    for (let trial = 0; trial < 5; trial++) {
      const merged = new RunningMoments();
      for (let i = 0; i < xs.length; ) {
        const shard = new RunningMoments();
        const end = Math.min(xs.length, i + random.int(1, 30));
        for (; i < end; i++) shard.add(xs[i]!);
        merged.merge(shard);
      }
      assert.equal(merged.count, 101);
      assert.ok(Math.abs(merged.mean - mean) < 1e-12 && Math.abs(merged.std - std) < 1e-12);
    }
    const a = new MetricTable();
    const b = new MetricTable();
    const all = new MetricTable();
    xs.forEach((x, i) => {
      const m = { mae: Math.abs(x), mse: x * x, psnr: x, ssim: x / 5, occluded: 0.5 };
      (i % 3 ? a : b).add('model', m);
      all.add('model', m);
    });
    a.merge(b);
    const [ra, rall] = [a.table()[0]!, all.table()[0]!];
    assert.equal(ra.clips, 101);
    for (const k of ['mae', 'mse', 'psnr', 'ssim'] as const) assert.ok(Math.abs(ra.values[k].mean - rall.values[k].mean) < 1e-12 && Math.abs(ra.values[k].std - rall.values[k].std) < 1e-12);
  });
});

describe('baselines', () => {
  /** A rank-2 sequence in [0, 1]: two spatial patterns with smooth temporal amplitudes. */
  function lowRank(g: { frames: number; height: number; width: number }): Float32Array {
    const n = g.height * g.width;
    const out = new Float32Array(g.frames * n);
    for (let t = 0; t < g.frames; t++) {
      for (let p = 0; p < n; p++) {
        const [y, x] = [Math.floor(p / g.width), p % g.width];
        const u1 = Math.sin((2 * Math.PI * x) / g.width) * Math.cos((Math.PI * y) / g.height);
        const u2 = Math.cos((2 * Math.PI * (x + y)) / g.width);
        out[t * n + p] = 0.5 + 0.25 * u1 * Math.cos(0.4 * t) + 0.2 * u2 * Math.sin(0.3 * t + 1);
      }
    }
    return out;
  }

  it('DINEOF recovers a low-rank sequence with half of its pixels hidden to within 1 % MAE', () => {
    const g = { frames: 20, height: 24, width: 24, channels: 1 };
    const truth = lowRank(g);
    const random = Random.fromKey('dineof-mask');
    const mask = Uint8Array.from({ length: truth.length }, () => (random.uniform(0, 1) < 0.5 ? 0 : 1));
    const observed = Float32Array.from(truth, (v, i) => (mask[i] ? v : 1));
    const filled = dineof()(observed, mask, g);
    const mae = maskedMae(truth, filled, mask, 1)!;
    assert.ok(mae < 0.01, `DINEOF MAE ${mae}`);
    for (let i = 0; i < mask.length; i++) if (mask[i]) assert.equal(filled[i], observed[i]);
    // The floor does far worse on the same data.
    assert.ok(maskedMae(truth, meanFill(observed, mask, g), mask, 1)! > 5 * mae);
  });

  it('interpolation is exact on linear-in-time pixels, copies the nearest frame at the ends, and mean-fills never-seen pixels', () => {
    const g = { frames: 5, height: 1, width: 3, channels: 2 };
    // Pixel p, channel c: value 0.1·t + 0.2·p + 0.05·c.
    const truth = Float32Array.from({ length: 30 }, (_, i) => {
      const [t, p, c] = [Math.floor(i / 6), Math.floor(i / 2) % 3, i % 2];
      return 0.1 * t + 0.2 * p + 0.05 * c;
    });
    // Pixel 0 seen at t = 0 and 4 only; pixel 1 seen at t = 2 only; pixel 2 never.
    const mask = new Uint8Array(15);
    mask[0] = mask[12] = 1;
    mask[3 * 2 + 1] = 1;
    const observed = Float32Array.from(truth, (v, i) => (mask[Math.floor(i / 2)] ? v : 0));
    const filled = temporalInterpolation(observed, mask, g);
    for (let t = 0; t < 5; t++) for (let c = 0; c < 2; c++) assert.ok(Math.abs(filled[(t * 3) * 2 + c]! - truth[(t * 3) * 2 + c]!) < 1e-6);
    for (let t = 0; t < 5; t++) assert.ok(Math.abs(filled[(t * 3 + 1) * 2]! - truth[(2 * 3 + 1) * 2]!) < 1e-6);
    const visibleMean = (c: number): number => [0, 4].map((t) => truth[t * 6 + c]!).concat(truth[(2 * 3 + 1) * 2 + c]!).reduce((a, b) => a + b) / 3;
    for (let c = 0; c < 2; c++) assert.ok(Math.abs(filled[(0 * 3 + 2) * 2 + c]! - visibleMean(c)) < 1e-6);
  });
});

describe('held-out scoring', () => {
  const shape = { frames: 4, height: 8, width: 8, channels: 1 };
  const n = shape.frames * shape.height * shape.width;
  const clip = (k: number): HeldOutClip => {
    const random = Random.fromKey("held-out", k);
    const truth = Float32Array.from({ length: n }, (_, i) => 0.5 + 0.3 * Math.sin(i / 7 + k) + 0.05 * random.uniform());
    const mask = Uint8Array.from({ length: n }, () => (random.uniform() < 0.6 ? 1 : 0));
    const observed = truth.map((v, i) => (mask[i] ? v : 1));
    return { id: `c${k}`, truth, mask, observed, physical: { unit: '°C', perUnit: 2 + k } };
  };
  const clips = Array.from({ length: 21 }, (_, k) => clip(k));
  // A "model" that fills every hole with 0.4 (in [0, 1]; 2·0.4 − 1 in the model's range).
  const fill = (y: tf.Tensor5D): tf.Tensor5D => tf.fill(y.shape, -0.2) as tf.Tensor5D;

  it('a stream scored 8 clips at a time gives the table of the clips scored at once, keeps only the first clips for pictures, and caches the baselines', async () => {
    await selectBackend('cpu');
    async function* stream() {
      yield* clips;
    }
    const scorer = new HeldOutScorer(shape, { pictures: 3 });
    const streamed = await scorer.score(stream(), fill);
    const whole = await new HeldOutScorer(shape, { group: 100 }).score(clips, fill);
    assert.equal(streamed.count, 21);
    assert.deepEqual(streamed.clips.map((c) => c.id), ['c0', 'c1', 'c2']);
    for (const outputs of streamed.outputs.values()) assert.equal(outputs.length, 3);
    for (const [i, row] of streamed.rows.entries()) {
      const other = whole.rows[i]!;
      assert.equal(row.method, other.method);
      for (const [k, v] of Object.entries(row.values)) {
        const w = other.values[k as keyof typeof other.values]!;
        assert.ok(Math.abs(v.mean - w.mean) < 1e-12 && Math.abs(v.std - w.std) < 1e-12 && v.count === w.count, `${row.method} ${k}`);
      }
    }
    // The model's masked MAE from the definition: |truth − 0.4| over the hidden pixels, per clip, averaged.
    const direct = clips.map((c) => {
      let sum = 0;
      let count = 0;
      c.mask.forEach((m, i) => m || ((sum += Math.abs(c.truth[i]! - 0.4)), count++));
      return sum / count;
    });
    const model = streamed.rows.find((r) => r.method === 'model')!;
    assert.ok(Math.abs(model.values.mae.mean - direct.reduce((a, b) => a + b) / 21) < 1e-6);
    // In the clips' physical unit: each clip's MAE times its own scale.
    assert.ok(Math.abs(model.values['mae-physical']!.mean - direct.reduce((a, v, k) => a + v * (2 + k), 0) / 21) < 1e-5);
    assert.equal(model.unit, '°C');
    // A second pass fills with the model only; the baselines' rows are the first pass's.
    const again = await scorer.score(stream(), (y) => tf.fill(y.shape, 0.6) as tf.Tensor5D);
    assert.deepEqual(again.rows.filter((r) => r.method !== 'model'), streamed.rows.filter((r) => r.method !== 'model'));
    assert.notEqual(again.rows[0]!.values.mae.mean, model.values.mae.mean);
  });

  it('RMSE in physical units over the occluded pixels, from a direct computation', () => {
    const c = clip(3);
    const estimate = c.truth.map((v, i) => (c.mask[i] ? v : v + (i % 3) * 0.01));
    let squares = 0;
    let hidden = 0;
    c.mask.forEach((m, i) => m || ((squares += ((i % 3) * 0.01) ** 2), hidden++));
    const m = clipMetrics(c.truth, estimate, c.mask, shape, { unit: '°C', perUnit: 5 });
    assert.ok(Math.abs(m['rmse-physical']! - 5 * Math.sqrt(squares / hidden)) < 1e-6);
    assert.ok(Math.abs(m['mae-physical']! - 5 * m.mae!) < 1e-12);
    assert.equal(clipMetrics(c.truth, estimate, c.mask, shape)['mae-physical'], undefined);
  });
});

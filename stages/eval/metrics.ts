/**
 * Per-clip quality metrics and their streaming, mergeable summaries (method.md §7).
 *
 * Every metric takes clips as float arrays in the unit range [0, 1], frame-major [T, H, W, C],
 * and a mask [T, H, W] (1 = visible) shared by a pixel's channels:
 * - `mae`: the paper's masked MAE, Σ|x − x̂|·(1 − m) / Σ(1 − m) over the occluded area only
 *   (undefined for a clip with nothing occluded);
 * - `mse` and `psnr` = 10·log10(1 / mse) over the whole clip (data range 1);
 * - `ssim`: Wang et al. (2004) with an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03,
 *   L = 1, over the window positions that fit inside the frame ('valid', as the reference MATLAB
 *   code), averaged over positions, channels and frames;
 * - `occluded`: the fraction of hidden pixels;
 * - `mae-physical`, `rmse-physical`: for data with a physical unit (SST in °C), the masked MAE and
 *   the RMSE over the occluded area in that unit, from each clip's own scale (a clip normalised
 *   per sequence has its own).
 *
 * {@link MetricTable} keeps, per method and metric, a count, mean and sum of squared deviations
 * (Welford), so summaries of shards or workers merge exactly (Chan et al.) and memory does not grow
 * with the number of clips.
 */

export interface ClipMetrics {
  readonly mae?: number;
  readonly mse: number;
  readonly psnr: number;
  readonly ssim: number;
  readonly occluded: number;
  readonly 'mae-physical'?: number;
  readonly 'rmse-physical'?: number;
}

/** A clip's physical unit: `perUnit` of it per unit of the [0, 1] range the metrics see (°C for SST). */
export interface PhysicalScale {
  readonly unit: string;
  readonly perUnit: number;
}

export interface FrameGeometry {
  readonly frames: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

/** Masked MAE: mean absolute error over occluded pixels (all channels); undefined when none is occluded. */
export function maskedMae(truth: ArrayLike<number>, estimate: ArrayLike<number>, mask: ArrayLike<number>, channels: number): number | undefined {
  let sum = 0;
  let count = 0;
  for (let p = 0; p < mask.length; p++) {
    if (mask[p]) continue;
    for (let c = 0; c < channels; c++) sum += Math.abs(truth[p * channels + c]! - estimate[p * channels + c]!);
    count += channels;
  }
  return count > 0 ? sum / count : undefined;
}

export function mse(truth: ArrayLike<number>, estimate: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < truth.length; i++) sum += (truth[i]! - estimate[i]!) ** 2;
  return sum / truth.length;
}

/** PSNR in dB for data in [0, 1]; Infinity for identical clips. */
export function psnr(meanSquaredError: number): number {
  return 10 * Math.log10(1 / meanSquaredError);
}

const SSIM_WINDOW = 11;
const SSIM_SIGMA = 1.5;
const C1 = 0.01 ** 2;
const C2 = 0.03 ** 2;

function gaussianWindow(size: number, sigma: number): Float64Array {
  const w = new Float64Array(size);
  const mid = (size - 1) / 2;
  let sum = 0;
  for (let i = 0; i < size; i++) sum += w[i] = Math.exp(-((i - mid) ** 2) / (2 * sigma * sigma));
  return w.map((v) => v / sum);
}

/** 'valid' separable filtering of an h × w plane with a 1D window (rows, then columns). */
function filterValid(plane: Float64Array, h: number, w: number, win: Float64Array): Float64Array {
  const k = win.length;
  const ow = w - k + 1;
  const oh = h - k + 1;
  const rows = new Float64Array(h * ow);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += win[i]! * plane[y * w + x + i]!;
      rows[y * ow + x] = s;
    }
  }
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += win[i]! * rows[(y + i) * ow + x]!;
      out[y * ow + x] = s;
    }
  }
  return out;
}

/** SSIM of two single-channel planes (h × w, values in [0, 1]); the window shrinks to fit small frames. */
export function ssimPlane(a: Float64Array, b: Float64Array, h: number, w: number): number {
  const size = Math.min(SSIM_WINDOW, h, w);
  const win = gaussianWindow(size, SSIM_SIGMA);
  const n = h * w;
  const aa = new Float64Array(n);
  const bb = new Float64Array(n);
  const ab = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    aa[i] = a[i]! * a[i]!;
    bb[i] = b[i]! * b[i]!;
    ab[i] = a[i]! * b[i]!;
  }
  const [ma, mb, saa, sbb, sab] = [a, b, aa, bb, ab].map((p) => filterValid(p, h, w, win)) as [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array];
  let sum = 0;
  for (let i = 0; i < ma.length; i++) {
    const [mx, my] = [ma[i]!, mb[i]!];
    const vx = saa[i]! - mx * mx;
    const vy = sbb[i]! - my * my;
    const cxy = sab[i]! - mx * my;
    sum += ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
  }
  return sum / ma.length;
}

/** SSIM of two clips, averaged over frames and channels. */
export function ssim(truth: ArrayLike<number>, estimate: ArrayLike<number>, g: FrameGeometry): number {
  const { frames, height, width, channels } = g;
  const n = height * width;
  const a = new Float64Array(n);
  const b = new Float64Array(n);
  let sum = 0;
  for (let t = 0; t < frames; t++) {
    for (let c = 0; c < channels; c++) {
      const base = t * n * channels;
      for (let p = 0; p < n; p++) {
        a[p] = truth[base + p * channels + c]!;
        b[p] = estimate[base + p * channels + c]!;
      }
      sum += ssimPlane(a, b, height, width);
    }
  }
  return sum / (frames * channels);
}

/** All metrics of one clip. */
export function clipMetrics(truth: ArrayLike<number>, estimate: ArrayLike<number>, mask: ArrayLike<number>, g: FrameGeometry, physical?: PhysicalScale): ClipMetrics {
  let hidden = 0;
  for (let p = 0; p < mask.length; p++) if (!mask[p]) hidden++;
  const e = mse(truth, estimate);
  const mae = maskedMae(truth, estimate, mask, g.channels);
  let inUnits = {};
  if (physical && mae !== undefined) {
    let squares = 0;
    for (let p = 0; p < mask.length; p++) if (!mask[p]) for (let c = 0; c < g.channels; c++) squares += (truth[p * g.channels + c]! - estimate[p * g.channels + c]!) ** 2;
    inUnits = { 'mae-physical': mae * physical.perUnit, 'rmse-physical': Math.sqrt(squares / (hidden * g.channels)) * physical.perUnit };
  }
  return { ...(mae === undefined ? {} : { mae }), mse: e, psnr: psnr(e), ssim: ssim(truth, estimate, g), occluded: hidden / mask.length, ...inUnits };
}

/** Count, mean and sum of squared deviations of a stream of numbers; mergeable. */
export class RunningMoments {
  constructor(
    public count = 0,
    public mean = 0,
    public m2 = 0,
  ) {}

  add(x: number): void {
    if (!Number.isFinite(x)) return;
    this.count += 1;
    const d = x - this.mean;
    this.mean += d / this.count;
    this.m2 += d * (x - this.mean);
  }

  /** Chan et al.'s pairwise combination: the same result as adding the other's values one by one. */
  merge(o: RunningMoments): void {
    if (o.count === 0) return;
    const n = this.count + o.count;
    const d = o.mean - this.mean;
    this.m2 += o.m2 + (d * d * this.count * o.count) / n;
    this.mean += (d * o.count) / n;
    this.count = n;
  }

  /** Sample standard deviation (n − 1); 0 for fewer than two values. */
  get std(): number {
    return this.count > 1 ? Math.sqrt(this.m2 / (this.count - 1)) : 0;
  }
}

export const METRICS = ['mae', 'psnr', 'ssim', 'mse', 'occluded', 'mae-physical', 'rmse-physical'] as const;
export type MetricName = (typeof METRICS)[number];
/** Metrics every row has; the physical ones only for data with a unit. */
type CoreMetric = Exclude<MetricName, 'mae-physical' | 'rmse-physical'>;
type Summary = { mean: number; std: number; count: number };

export interface MetricRow {
  readonly method: string;
  readonly clips: number;
  readonly values: Readonly<Record<CoreMetric, Summary> & Partial<Record<'mae-physical' | 'rmse-physical', Summary>>>;
  /** The unit of the physical metrics, when there are any. */
  readonly unit?: string;
}

/** Method × metric summaries over clips. Infinite PSNR (a perfect clip) is left out of its mean. */
export class MetricTable {
  private readonly rows = new Map<string, Map<MetricName, RunningMoments>>();
  /** The physical metrics' unit, once a clip had one. */
  unit?: string;

  add(method: string, m: ClipMetrics, unit?: string): void {
    if (unit) this.unit = unit;
    let row = this.rows.get(method);
    if (!row) this.rows.set(method, (row = new Map(METRICS.map((k) => [k, new RunningMoments()]))));
    for (const k of METRICS) {
      const v = m[k];
      if (v !== undefined) row.get(k)!.add(v);
    }
  }

  merge(other: MetricTable): void {
    this.unit ??= other.unit;
    for (const [method, row] of other.rows) {
      let mine = this.rows.get(method);
      if (!mine) this.rows.set(method, (mine = new Map(METRICS.map((k) => [k, new RunningMoments()]))));
      for (const [k, m] of row) mine.get(k)!.merge(m);
    }
  }

  get methods(): string[] {
    return [...this.rows.keys()];
  }

  table(): MetricRow[] {
    return [...this.rows].map(([method, row]) => {
      const values = Object.fromEntries(METRICS.flatMap((k) => {
        const m = row.get(k)!;
        if (m.count === 0 && (k === 'mae-physical' || k === 'rmse-physical')) return [];
        return [[k, { mean: m.mean, std: m.std, count: m.count }]];
      })) as MetricRow['values'];
      return { method, clips: row.get('mse')!.count, values, ...(this.unit && { unit: this.unit }) };
    });
  }
}

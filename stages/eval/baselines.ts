/**
 * Classical baselines that fill a clip's hidden pixels from its visible ones (method.md §8), run
 * on the same clips as the model:
 * - `mean-fill`: every hidden value is the mean of the clip's visible values of its channel (the floor);
 * - `interpolation`: per pixel and channel, linear interpolation in time between the nearest
 *   visible frames before and after (the nearest one alone at the ends; mean fill where a pixel
 *   is never visible);
 * - `dineof`: DINEOF (Beckers & Rixen 2003), iterative truncated-SVD completion of the
 *   (pixels·channels) × time matrix, the number of modes chosen by cross-validation on a held-back
 *   3 % of the visible values.
 *
 * Clips are float arrays in [0, 1], frame-major [T, H, W, C]; masks [T, H, W] with 1 = visible.
 * Visible values are returned unchanged. Linear algebra: ml-matrix (symmetric eigen-decomposition).
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { Random } from '../random.ts';
import type { FrameGeometry } from './metrics.ts';

export type Baseline = (observed: Float32Array, mask: Uint8Array, g: FrameGeometry) => Float32Array;

function channelMeans(observed: Float32Array, mask: Uint8Array, channels: number): Float64Array {
  const sum = new Float64Array(channels);
  let count = 0;
  for (let p = 0; p < mask.length; p++) {
    if (!mask[p]) continue;
    for (let c = 0; c < channels; c++) sum[c]! += observed[p * channels + c]!;
    count++;
  }
  return sum.map((s) => (count > 0 ? s / count : 0.5));
}

export const meanFill: Baseline = (observed, mask, g) => {
  const means = channelMeans(observed, mask, g.channels);
  const out = Float32Array.from(observed);
  for (let p = 0; p < mask.length; p++) {
    if (mask[p]) continue;
    for (let c = 0; c < g.channels; c++) out[p * g.channels + c] = means[c]!;
  }
  return out;
};

export const temporalInterpolation: Baseline = (observed, mask, g) => {
  const { frames, channels } = g;
  const n = g.height * g.width;
  const means = channelMeans(observed, mask, channels);
  const out = Float32Array.from(observed);
  for (let p = 0; p < n; p++) {
    let prev = -1;
    for (let t = 0; t <= frames; t++) {
      const visible = t < frames && mask[t * n + p] === 1;
      if (t < frames && !visible) continue;
      // Frames prev+1 … t−1 are hidden: fill them from prev and t (either may be missing).
      const next = t < frames ? t : -1;
      for (let u = prev + 1; u < t; u++) {
        for (let c = 0; c < channels; c++) {
          const at = (f: number): number => observed[(f * n + p) * channels + c]!;
          let v: number;
          if (prev >= 0 && next >= 0) v = at(prev) + ((u - prev) / (next - prev)) * (at(next) - at(prev));
          else if (prev >= 0) v = at(prev);
          else if (next >= 0) v = at(next);
          else v = means[c]!;
          out[(u * n + p) * channels + c] = v;
        }
      }
      prev = t;
    }
  }
  return out;
};

export interface DineofOptions {
  /** Most EOF modes tried (capped at T − 1). */
  readonly maxModes?: number;
  /** Share of visible values held back for choosing the number of modes. */
  readonly holdOut?: number;
  /** Iterations per mode count at most, and the relative change that stops them earlier. */
  readonly maxIterations?: number;
  readonly tolerance?: number;
  /** Seed of the held-back choice. */
  readonly seed?: number;
}

/**
 * Completes a (rows × T) matrix stored row-major, whose `known` entries are given, with `modes`
 * EOFs: missing entries start at 0 (the data are centred) and are replaced by the rank-k
 * reconstruction until they settle.
 */
function complete(values: Float64Array, known: Uint8Array, rows: number, cols: number, modes: number, maxIterations: number, tolerance: number): Float64Array {
  const x = Float64Array.from(values, (v, i) => (known[i] ? v : 0));
  for (let iteration = 0; iteration < maxIterations; iteration++) {
    // Gram matrix XᵀX (T × T) and its top eigenvectors: X·V·Vᵀ is the rank-k reconstruction.
    const gram = new Matrix(cols, cols);
    for (let a = 0; a < cols; a++) {
      for (let b = a; b < cols; b++) {
        let s = 0;
        for (let r = 0; r < rows; r++) s += x[r * cols + a]! * x[r * cols + b]!;
        gram.set(a, b, s);
        gram.set(b, a, s);
      }
    }
    const eig = new EigenvalueDecomposition(gram, { assumeSymmetric: true });
    const vectors = eig.eigenvectorMatrix;
    const order = eig.realEigenvalues.map((v, i) => [v, i] as const).sort((p, q) => q[0] - p[0]).slice(0, modes).map(([, i]) => i);
    const projector = new Float64Array(cols * cols);
    for (const k of order) {
      for (let a = 0; a < cols; a++) for (let b = 0; b < cols; b++) projector[a * cols + b]! += vectors.get(a, k) * vectors.get(b, k);
    }
    let change = 0;
    let size = 0;
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < cols; b++) {
        const i = r * cols + b;
        if (known[i]) continue;
        let s = 0;
        for (let a = 0; a < cols; a++) s += x[r * cols + a]! * projector[a * cols + b]!;
        change += (s - x[i]!) ** 2;
        size += s * s;
        x[i] = s;
      }
    }
    if (change <= tolerance * tolerance * Math.max(size, 1e-12)) break;
  }
  return x;
}

export function dineof(options: DineofOptions = {}): Baseline {
  const { maxModes = 6, holdOut = 0.03, maxIterations = 60, tolerance = 1e-3, seed = 0 } = options;
  return (observed, mask, g) => {
    const { frames: cols, channels } = g;
    const n = g.height * g.width;
    const rows = n * channels;
    // Matrix [pixel·channel, t], centred on the mean of the visible values.
    const values = new Float64Array(rows * cols);
    const known = new Uint8Array(rows * cols);
    let sum = 0;
    let count = 0;
    for (let t = 0; t < cols; t++) {
      for (let p = 0; p < n; p++) {
        if (!mask[t * n + p]) continue;
        for (let c = 0; c < channels; c++) {
          const r = p * channels + c;
          values[r * cols + t] = observed[(t * n + p) * channels + c]!;
          known[r * cols + t] = 1;
          sum += values[r * cols + t]!;
          count++;
        }
      }
    }
    if (count === 0) return meanFill(observed, mask, g);
    const mean = sum / count;
    for (let i = 0; i < values.length; i++) if (known[i]) values[i]! -= mean;

    // Cross-validation: hide a few visible values, keep the mode count that predicts them best.
    const random = Random.fromKey('dineof', seed);
    const training = Uint8Array.from(known, (k) => (k && random.uniform(0, 1) >= holdOut ? 1 : 0));
    const held: number[] = [];
    for (let i = 0; i < known.length; i++) if (known[i] && !training[i]) held.push(i);
    let best = 1;
    let bestError = Infinity;
    for (let k = 1; k <= Math.max(1, Math.min(maxModes, cols - 1)); k++) {
      const x = complete(values, training, rows, cols, k, maxIterations, tolerance);
      let e = 0;
      for (const i of held) e += (x[i]! - values[i]!) ** 2;
      if (e < bestError - 1e-12) [best, bestError] = [k, e];
      else if (held.length > 0) break; // past the optimum: more modes fit noise
    }
    const x = complete(values, known, rows, cols, best, maxIterations, tolerance);
    const out = Float32Array.from(observed);
    for (let t = 0; t < cols; t++) {
      for (let p = 0; p < n; p++) {
        if (mask[t * n + p]) continue;
        for (let c = 0; c < channels; c++) out[(t * n + p) * channels + c] = Math.min(1, Math.max(0, x[(p * channels + c) * cols + t]! + mean));
      }
    }
    return out;
  };
}

/** The baselines by name, in the order reports list them. */
export const BASELINES: ReadonlyArray<readonly [string, Baseline]> = [
  ['dineof', dineof()],
  ['interpolation', temporalInterpolation],
  ['mean-fill', meanFill],
];

/**
 * The Fréchet distance between two Gaussians fitted to feature vectors (the FID and FVD of
 * method.md §7), the streaming, mergeable float64 moments it is computed from, and the `.npz`
 * statistics files of pytorch-fid (arrays `mu` and `sigma`), read without Python.
 *
 *   d² = ‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr (Σ₁^½ Σ₂ Σ₁^½)^½
 *
 * computed by the symmetric eigen-decomposition route (ml-matrix): Σ₁^½ from the eigenpairs of Σ₁
 * (negative round-off eigenvalues clipped to 0), then the eigenvalues of the symmetric positive
 * semi-definite Σ₁^½ Σ₂ Σ₁^½, whose square roots sum to the trace term. No hand-written matrix
 * square root. Which features go in (Inception-v3 pool features for FID, I3D logits for FVD) is the
 * caller's business: nothing here is called FID unless those features were used.
 */
import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import { EigenvalueDecomposition, Matrix, SingularValueDecomposition } from 'ml-matrix';
import { npyValues, parseNpyHeader } from '../decode/npy.ts';

export interface Gaussian {
  readonly mu: Float64Array;
  /** Row-major d × d covariance. */
  readonly sigma: Float64Array;
}

function symmetricEigen(a: Matrix): { values: number[]; vectors: Matrix } {
  const e = new EigenvalueDecomposition(a, { assumeSymmetric: true });
  return { values: e.realEigenvalues, vectors: e.eigenvectorMatrix };
}

export function frechetDistance(a: Gaussian, b: Gaussian): number {
  const d = a.mu.length;
  if (b.mu.length !== d || a.sigma.length !== d * d || b.sigma.length !== d * d) {
    throw new Error(`Fréchet distance: dimensions differ (μ ${a.mu.length} and ${b.mu.length}, Σ ${a.sigma.length} and ${b.sigma.length} values)`);
  }
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (a.mu[i]! - b.mu[i]!) ** 2;
  const square = (s: Float64Array): Matrix => {
    const m = new Matrix(d, d);
    // Symmetrised, so that round-off asymmetry does not reach the eigen-solver.
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) m.set(i, j, (s[i * d + j]! + s[j * d + i]!) / 2);
    return m;
  };
  const s1 = square(a.sigma);
  const s2 = square(b.sigma);
  const { values, vectors } = symmetricEigen(s1);
  const root = vectors.mmul(Matrix.diag(values.map((v) => Math.sqrt(Math.max(v, 0))))).mmul(vectors.transpose());
  const inner = root.mmul(s2).mmul(root);
  const innerSym = inner.add(inner.transpose()).div(2);
  const traceRoot = symmetricEigen(innerSym).values.reduce((sum, v) => sum + Math.sqrt(Math.max(v, 0)), 0);
  let traces = 0;
  for (let i = 0; i < d; i++) traces += s1.get(i, i) + s2.get(i, i);
  return meanTerm + traces - 2 * traceRoot;
}

/** Mean and covariance of feature vectors, accumulated in float64 one batch at a time; mergeable. */
export class FeatureMoments {
  count = 0;
  private readonly mean: Float64Array;
  /** Σ (x − mean)(x − mean)ᵀ, row-major. */
  private readonly comoment: Float64Array;

  constructor(readonly dimension: number) {
    this.mean = new Float64Array(dimension);
    this.comoment = new Float64Array(dimension * dimension);
  }

  /** Adds `rows` feature vectors stored one after the other. */
  add(features: ArrayLike<number>, rows = features.length / this.dimension): void {
    const d = this.dimension;
    const delta = new Float64Array(d);
    for (let r = 0; r < rows; r++) {
      this.count += 1;
      for (let i = 0; i < d; i++) {
        delta[i] = features[r * d + i]! - this.mean[i]!;
        this.mean[i]! += delta[i]! / this.count;
      }
      // Welford: C += δ_before ⊗ (x − mean_after)
      for (let i = 0; i < d; i++) {
        const di = delta[i]!;
        if (di === 0) continue;
        for (let j = 0; j < d; j++) this.comoment[i * d + j]! += di * (features[r * d + j]! - this.mean[j]!);
      }
    }
  }

  /** Chan et al.'s combination of two sets of moments. */
  merge(o: FeatureMoments): void {
    if (o.dimension !== this.dimension) throw new Error(`cannot merge ${o.dimension}-d moments into ${this.dimension}-d ones`);
    if (o.count === 0) return;
    const d = this.dimension;
    const n = this.count + o.count;
    const delta = Float64Array.from(o.mean, (m, i) => m - this.mean[i]!);
    const w = (this.count * o.count) / n;
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) this.comoment[i * d + j]! += o.comoment[i * d + j]! + delta[i]! * delta[j]! * w;
    for (let i = 0; i < d; i++) this.mean[i]! += (delta[i]! * o.count) / n;
    this.count = n;
  }

  /** μ and the unbiased covariance Σ (n − 1), as numpy's `np.cov(rowvar=False)`. */
  gaussian(): Gaussian {
    if (this.count < 2) throw new Error(`a covariance needs at least 2 feature vectors, got ${this.count}`);
    return { mu: Float64Array.from(this.mean), sigma: this.comoment.map((v) => v / (this.count - 1)) };
  }
}

/** Reads pytorch-fid's statistics file: a `.npz` (zip, stored or deflated) holding `mu` (d) and `sigma` (d × d). */
export function readFidStats(path: string): Gaussian {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(readFileSync(path));
  } catch (err) {
    throw new Error(`${path}: not a readable .npz file (${err instanceof Error ? err.message : String(err)})`);
  }
  const array = (name: string): { shape: readonly number[]; values: Float64Array } => {
    const bytes = entries[`${name}.npy`];
    if (!bytes) throw new Error(`${path}: no array "${name}" (it holds ${Object.keys(entries).map((k) => k.replace(/\.npy$/, '')).join(', ') || 'nothing'})`);
    const header = parseNpyHeader(bytes, `${path}:${name}`);
    const values = npyValues(header.dtype, bytes.subarray(header.dataOffset));
    if (header.fortranOrder && header.shape.length === 2) {
      // Column-major on disk: transpose into row-major.
      const [rows, cols] = header.shape as [number, number];
      const out = new Float64Array(values.length);
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = values[j * rows + i]!;
      return { shape: header.shape, values: out };
    }
    return { shape: header.shape, values };
  };
  const mu = array('mu');
  const sigma = array('sigma');
  const d = mu.values.length;
  if (mu.shape.length !== 1 || sigma.shape.length !== 2 || sigma.shape[0] !== d || sigma.shape[1] !== d) {
    throw new Error(`${path}: mu has shape (${mu.shape.join(', ')}) and sigma (${sigma.shape.join(', ')}); expected (d) and (d, d)`);
  }
  return { mu: mu.values, sigma: sigma.values };
}

/**
 * The Fréchet distance between the Gaussians fitted to two sets of feature vectors, exactly, from
 * the vectors themselves (rows of `a` and `b`, `d` values each). With A = (X − μ)/√(n − 1) for each
 * set, Tr Σ = ‖A‖²_F, and the eigenvalues of Σ₁Σ₂ = A₁ᵀA₁A₂ᵀA₂ are the squared singular values of
 * A₁A₂ᵀ, so Tr (Σ₁^½ Σ₂ Σ₁^½)^½ is the sum of the singular values of that n₁ × n₂ matrix (an SVD by
 * ml-matrix). The cost is O(d·n₁·n₂ + n³) instead of the O(d³) of two d × d eigen-decompositions:
 * the route to take when there are fewer vectors than dimensions (a 2048-d eigen-decomposition
 * takes minutes in JavaScript).
 */
export function frechetFromSamples(a: ArrayLike<number>, b: ArrayLike<number>, d: number): number {
  const centred = (x: ArrayLike<number>): { rows: Float64Array[]; mu: Float64Array; trace: number } => {
    const n = x.length / d;
    if (!Number.isInteger(n) || n < 2) throw new Error(`Fréchet distance: ${x.length} values are not at least 2 vectors of ${d}`);
    const mu = new Float64Array(d);
    for (let r = 0; r < n; r++) for (let i = 0; i < d; i++) mu[i]! += x[r * d + i]! / n;
    const scale = 1 / Math.sqrt(n - 1);
    let trace = 0;
    const rows = Array.from({ length: n }, (_, r) => {
      const row = new Float64Array(d);
      for (let i = 0; i < d; i++) {
        row[i] = (x[r * d + i]! - mu[i]!) * scale;
        trace += row[i]! * row[i]!;
      }
      return row;
    });
    return { rows, mu, trace };
  };
  const p = centred(a);
  const q = centred(b);
  const m = new Matrix(p.rows.length, q.rows.length);
  for (let i = 0; i < p.rows.length; i++) {
    const u = p.rows[i]!;
    for (let j = 0; j < q.rows.length; j++) {
      const v = q.rows[j]!;
      let dot = 0;
      for (let k = 0; k < d; k++) dot += u[k]! * v[k]!;
      m.set(i, j, dot);
    }
  }
  const singular = new SingularValueDecomposition(m, { computeLeftSingularVectors: false, computeRightSingularVectors: false, autoTranspose: true }).diagonal;
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (p.mu[i]! - q.mu[i]!) ** 2;
  return meanTerm + p.trace + q.trace - 2 * singular.reduce((s, v) => s + Math.max(v, 0), 0);
}

/** One side of a Fréchet distance: fitted statistics (a `.npz`), or the feature vectors themselves. */
export type FeatureSet = { readonly gaussian: Gaussian } | { readonly samples: ArrayLike<number> };

/**
 * The Fréchet distance of two feature sets of dimension `d`, by the cheaper exact route: from the
 * vectors (`frechetFromSamples`) when both sides have them and n₁·n₂ ≤ d², else from the moments.
 */
export function frechetOfSets(a: FeatureSet, b: FeatureSet, d: number): number {
  if ('samples' in a && 'samples' in b && (a.samples.length / d) * (b.samples.length / d) <= d * d) return frechetFromSamples(a.samples, b.samples, d);
  const gaussianOf = (set: FeatureSet): Gaussian => {
    if ('gaussian' in set) return set.gaussian;
    const moments = new FeatureMoments(d);
    moments.add(set.samples);
    return moments.gaussian();
  };
  return frechetDistance(gaussianOf(a), gaussianOf(b));
}

/**
 * Fréchet distance: closed forms (diagonal covariances; 2 × 2 through Tr √(Σ₁Σ₂) = √(tr Σ₁Σ₂ +
 * 2 √det Σ₁Σ₂)), an independent route for a larger case (eigenvalues of the non-symmetric Σ₁Σ₂),
 * zero for identical statistics; streaming moments equal to the batch computation whatever the
 * batching; `.npz` statistics written by numpy's conventions (C and Fortran order, float32 and
 * float64, stored and deflated zips) and, where numpy is installed, by numpy itself; the `fid` command.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { zipSync } from 'fflate';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { main } from '../../cli/main.ts';
import { FeatureMoments, frechetDistance, readFidStats, type Gaussian } from '../../stages/eval/frechet.ts';
import { Random } from '../../stages/random.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-frechet-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A random symmetric positive-definite d × d matrix, row-major (AᵀA + εI). */
function spd(random: Random, d: number): Float64Array {
  const a = Array.from({ length: d * d }, () => random.uniform(-1, 1));
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) {
    let s = i === j ? 0.1 : 0;
    for (let k = 0; k < d; k++) s += a[k * d + i]! * a[k * d + j]!;
    out[i * d + j] = s;
  }
  return out;
}

const gaussian = (random: Random, d: number): Gaussian => ({ mu: Float64Array.from({ length: d }, () => random.uniform(-2, 2)), sigma: spd(random, d) });

describe('Fréchet distance', () => {
  it('matches the closed form for diagonal covariances', () => {
    const mu1 = Float64Array.of(1, 2, 3);
    const mu2 = Float64Array.of(0, 2, 5);
    const v1 = [4, 1, 0.25];
    const v2 = [1, 9, 0.25];
    const diag = (v: number[]): Float64Array => Float64Array.from({ length: 9 }, (_, k) => (k % 4 === 0 ? v[k / 4]! : 0));
    let expected = 1 + 0 + 4;
    for (let i = 0; i < 3; i++) expected += v1[i]! + v2[i]! - 2 * Math.sqrt(v1[i]! * v2[i]!);
    assert.ok(Math.abs(frechetDistance({ mu: mu1, sigma: diag(v1) }, { mu: mu2, sigma: diag(v2) }) - expected) < 1e-10);
  });

  it('matches the 2 × 2 closed form and an independent route on a 6-dimensional case; is 0 for identical statistics', () => {
    const random = Random.fromKey('frechet');
    const [a, b] = [gaussian(random, 2), gaussian(random, 2)];
    const [p, q] = [a.sigma, b.sigma];
    const prod = [p[0]! * q[0]! + p[1]! * q[2]!, p[0]! * q[1]! + p[1]! * q[3]!, p[2]! * q[0]! + p[3]! * q[2]!, p[2]! * q[1]! + p[3]! * q[3]!];
    const traceRoot = Math.sqrt(prod[0]! + prod[3]! + 2 * Math.sqrt(prod[0]! * prod[3]! - prod[1]! * prod[2]!));
    const closed = (a.mu[0]! - b.mu[0]!) ** 2 + (a.mu[1]! - b.mu[1]!) ** 2 + p[0]! + p[3]! + q[0]! + q[3]! - 2 * traceRoot;
    assert.ok(Math.abs(frechetDistance(a, b) - closed) < 1e-9 * Math.max(1, closed));

    const [c, e] = [gaussian(random, 6), gaussian(random, 6)];
    const m = (s: Float64Array): Matrix => new Matrix(Array.from({ length: 6 }, (_, i) => Array.from(s.subarray(i * 6, i * 6 + 6))));
    // Σ₁Σ₂ is similar to Σ₁^½Σ₂Σ₁^½: the same non-negative eigenvalues, found here by the general solver.
    const general = new EigenvalueDecomposition(m(c.sigma).mmul(m(e.sigma)));
    const root = general.realEigenvalues.reduce((s, v) => s + Math.sqrt(Math.max(v, 0)), 0);
    let independent = -2 * root;
    for (let i = 0; i < 6; i++) independent += (c.mu[i]! - e.mu[i]!) ** 2 + c.sigma[i * 7]! + e.sigma[i * 7]!;
    assert.ok(Math.abs(frechetDistance(c, e) - independent) < 1e-8 * Math.max(1, independent), `${frechetDistance(c, e)} vs ${independent}`);
    assert.ok(Math.abs(frechetDistance(c, c)) < 1e-8);
  });

  it('accumulates mean and covariance exactly as the batch computation, whatever the batching', () => {
    const random = Random.fromKey('moments');
    const d = 5;
    const n = 57;
    const x = Float64Array.from({ length: n * d }, () => random.uniform(-3, 3) ** 3);
    const mean = Array.from({ length: d }, (_, j) => Array.from({ length: n }, (_, r) => x[r * d + j]!).reduce((a, b) => a + b) / n);
    const cov = Array.from({ length: d * d }, (_, k) => {
      const [i, j] = [Math.floor(k / d), k % d];
      let s = 0;
      for (let r = 0; r < n; r++) s += (x[r * d + i]! - mean[i]!) * (x[r * d + j]! - mean[j]!);
      return s / (n - 1);
    });
    for (let trial = 0; trial < 4; trial++) {
      const total = new FeatureMoments(d);
      for (let r = 0; r < n; ) {
        const rows = Math.min(n - r, random.int(1, 20));
        const part = new FeatureMoments(d);
        part.add(x.subarray(r * d, (r + rows) * d));
        total.merge(part);
        r += rows;
      }
      const g = total.gaussian();
      g.mu.forEach((v, i) => assert.ok(Math.abs(v - mean[i]!) < 1e-12));
      g.sigma.forEach((v, k) => assert.ok(Math.abs(v - cov[k]!) < 1e-10 * Math.max(1, Math.abs(cov[k]!))));
    }
  });
});

/** An .npy file by the format's rules: magic, version 1.0, a dict header padded to 64 bytes with '\n', data. */
function npy(values: Float64Array, shape: number[], dtype: '<f8' | '<f4', fortran: boolean): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${dtype}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const data = dtype === '<f8' ? new Uint8Array(values.buffer.slice(0)) : new Uint8Array(Float32Array.from(values).buffer);
  const out = new Uint8Array(10 + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(data, 10 + header.length);
  return out;
}

function writeStats(path: string, g: Gaussian, o: { dtype: '<f8' | '<f4'; fortran: boolean; level: 0 | 6 }): void {
  const d = g.mu.length;
  const sigma = o.fortran ? Float64Array.from({ length: d * d }, (_, k) => g.sigma[(k % d) * d + Math.floor(k / d)]!) : g.sigma;
  writeFileSync(path, zipSync({ 'mu.npy': npy(g.mu, [d], o.dtype, false), 'sigma.npy': npy(sigma, [d, d], o.dtype, o.fortran) }, { level: o.level }));
}

describe('.npz statistics and the fid command', () => {
  it('reads mu and sigma in C and Fortran order, float64 and float32, stored and deflated; fid prints the distance', async () => {
    const random = Random.fromKey('npz');
    const [a, b] = [gaussian(random, 4), gaussian(random, 4)];
    const expected = frechetDistance(a, b);
    for (const dtype of ['<f8', '<f4'] as const) {
      for (const fortran of [false, true]) {
        for (const level of [0, 6] as const) {
          const path = join(scratch, `a-${dtype.slice(1)}-${fortran}-${level}.npz`);
          writeStats(path, a, { dtype, fortran, level });
          const read = readFidStats(path);
          const tol = dtype === '<f8' ? 0 : 1e-6;
          read.mu.forEach((v, i) => assert.ok(Math.abs(v - a.mu[i]!) <= tol * Math.max(1, Math.abs(a.mu[i]!))));
          read.sigma.forEach((v, k) => assert.ok(Math.abs(v - a.sigma[k]!) <= tol * Math.max(1, Math.abs(a.sigma[k]!)), `${path} sigma[${k}]`));
        }
      }
    }
    const [pa, pb] = [join(scratch, 'a.npz'), join(scratch, 'b.npz')];
    writeStats(pa, a, { dtype: '<f8', fortran: false, level: 6 });
    writeStats(pb, b, { dtype: '<f8', fortran: true, level: 0 });
    const out: string[] = [];
    const err: string[] = [];
    assert.equal(await main(['fid', pa, pb, '--json'], { out: (l) => out.push(l), err: (l) => err.push(l) }), 0);
    assert.ok(Math.abs((JSON.parse(out.at(-1)!) as { fid: number }).fid - expected) < 1e-9 * Math.max(1, expected));
    assert.equal(await main(['fid', pa, join(scratch, 'frames/')], { out: () => {}, err: (l) => err.push(l) }), 2);
    assert.match(err.at(-1)!, /fid: no file or folder ".*frames\/"/);
    assert.equal(await main(['fid', pa, scratch], { out: () => {}, err: (l) => err.push(l) }), 2);
    assert.match(err.at(-1)!, /is a folder; its features need --model \(a converted Inception-v3 graph model/);
    writeFileSync(join(scratch, 'bad.npz'), 'not a zip');
    assert.equal(await main(['fid', pa, join(scratch, 'bad.npz')], { out: () => {}, err: (l) => err.push(l) }), 1);
    assert.match(err.at(-1)!, /bad\.npz: not a readable \.npz file/);
  });

  it('reads a file numpy itself wrote (np.savez), where numpy is installed', (t) => {
    const path = join(scratch, 'numpy.npz');
    try {
      execFileSync('python3', ['-c', `import numpy as np; s = np.array([[2.0, 0.5], [0.25, 1.0]]); np.savez(${JSON.stringify(path)}, mu=np.array([1.0, -1.0]), sigma=np.asfortranarray(s).astype(np.float32))`], { stdio: 'ignore' });
    } catch {
      t.skip('python3 with numpy is not installed');
      return;
    }
    const g = readFidStats(path);
    assert.deepEqual(Array.from(g.mu), [1, -1]);
    assert.deepEqual(Array.from(g.sigma), [2, 0.5, 0.25, 1]); // row-major, though stored column-major
  });
});

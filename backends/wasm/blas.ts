/**
 * A native CBLAS library (OpenBLAS) called on the wasm backend's heap through koffi, for the
 * products and convolutions that carry a training iteration's arithmetic.
 *
 * Why: wasm has 128-bit SIMD and no fused multiply-add, so XNNPACK's products and convolutions
 * top out near 24 GFLOP/s per core here, where OpenBLAS's AVX2 kernels reach 92 GFLOP/s on a
 * 1024³ product (one thread of the 2-core build machine) and 75 – 79 GFLOP/s on each of two
 * threads at once on a convolution tap's shape ([4096, 192] · [192, 64]). koffi (an npm package
 * with prebuilt binaries, nothing compiled or downloaded at install) calls `cblas_sgemm` with
 * Float32Array views of the wasm heap: the library reads and writes the tensors in place, and a
 * call costs about 0.4 µs.
 *
 * Which library: `ST_INPAINT_BLAS` names one (a path or a soname; `off` turns the route off).
 * Otherwise the first of {@link CANDIDATES} that loads and is a threaded OpenBLAS build: a
 * data-parallel trainer calls it from two threads at once, which a build without threading
 * support does not allow (its buffers are shared without locks), so a `SINGLE_THREADED` build
 * (Debian's `libopenblas0-serial`) is passed over. OpenBLAS's own threads are set to one: the
 * trainer's threads already use the cores.
 *
 * Must not know about any model.
 */
import { createRequire } from 'node:module';

/** Row-major `C = A·B + beta·C` with optional transposes, on float32 views (of the wasm heap). */
export interface Blas {
  /** The library, as its build describes itself: `OpenBLAS 0.3.21 … Zen …`. */
  readonly description: string;
  /** Where it was loaded from. */
  readonly path: string;
  /**
   * C[m, n] = op(A)[m, k] · op(B)[k, n] + beta · C, row-major; `a`, `b` and `c` start at the
   * first element of their matrices, lda / ldb / ldc are their row strides in elements.
   */
  gemm(transA: boolean, transB: boolean, m: number, n: number, k: number, a: Float32Array, lda: number, b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number): void;
}

/**
 * Where a threaded OpenBLAS is looked for when `ST_INPAINT_BLAS` names none: Debian's and
 * Ubuntu's pthread and OpenMP builds (`libopenblas0-pthread`, the default of `libopenblas0`),
 * then whatever the system's `libopenblas.so.0` is, then Homebrew's.
 */
export const CANDIDATES: readonly string[] = [
  `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/openblas-pthread/libopenblas.so.0`,
  `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/openblas-openmp/libopenblas.so.0`,
  'libopenblas.so.0',
  'libopenblas.so',
  '/opt/homebrew/opt/openblas/lib/libopenblas.dylib',
  '/usr/local/opt/openblas/lib/libopenblas.dylib',
];

const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

interface Koffi {
  load(path: string): { func(definition: string): (...args: unknown[]) => unknown };
}

/** The outcome of looking for a library: the library, or why there is none (one line). */
export type BlasLookup = { blas: Blas; reason?: undefined } | { blas?: undefined; reason: string };

/**
 * Loads `path` as a CBLAS library.
 * @throws Error naming the path when it does not load or lacks `cblas_sgemm`.
 */
function open(koffi: Koffi, path: string): Blas {
  const lib = koffi.load(path);
  const sgemm = lib.func('void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)');
  let description = path;
  try {
    description = String(lib.func('const char *openblas_get_config()')());
    lib.func('void openblas_set_num_threads(int n)')(1);
  } catch {
    // Not OpenBLAS: a CBLAS library named by ST_INPAINT_BLAS, used as it is.
  }
  return {
    description,
    path,
    gemm(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc) {
      sgemm(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, m, n, k, 1, a, lda, b, ldb, beta, c, ldc);
    },
  };
}

/**
 * The CBLAS library the wasm kernels use, as `ST_INPAINT_BLAS` says (the wasm kernels look once
 * per thread, when they are registered).
 * @throws Error naming the library when ST_INPAINT_BLAS names one that does not load.
 */
export function findBlas(): BlasLookup {
  return lookupBlas(process.env['ST_INPAINT_BLAS']);
}

/**
 * @param setting `off`, a path or soname, or undefined to search `candidates`.
 * @throws Error naming the library when `setting` names one that does not load.
 */
export function lookupBlas(setting: string | undefined, candidates: readonly string[] = CANDIDATES): BlasLookup {
  if (setting === 'off' || setting === '0') return { reason: 'turned off by ST_INPAINT_BLAS' };
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (err) {
    if (setting) throw new Error(`ST_INPAINT_BLAS=${setting}: the koffi package, which calls it, does not load (${(err as Error).message.split('\n')[0]}); npm install koffi`);
    return { reason: 'the optional package koffi is not installed' };
  }
  if (setting) {
    try {
      return { blas: open(koffi, setting) };
    } catch (err) {
      throw new Error(`ST_INPAINT_BLAS=${setting}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  const passedOver: string[] = [];
  for (const path of candidates) {
    let blas: Blas;
    try {
      blas = open(koffi, path);
    } catch {
      continue;
    }
    if (/SINGLE_THREADED/.test(blas.description)) {
      passedOver.push(path);
      continue;
    }
    return { blas };
  }
  return {
    reason: passedOver.length > 0
      ? `only a single-threaded OpenBLAS (${passedOver[0]}), which two threads cannot share; install libopenblas0-pthread`
      : 'no OpenBLAS found (Debian: apt-get install libopenblas0-pthread)',
  };
}

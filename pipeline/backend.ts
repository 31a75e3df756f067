/**
 * Compute-backend selection: `auto | tensorflow-gpu | tensorflow | wasm | cpu`. `auto` takes the
 * first that loads, in that order, and says why the ones before it did not. TensorFlow's native
 * bindings (`@tensorflow/tfjs-node-gpu`, `@tensorflow/tfjs-node`) are optional dependencies: they
 * download libtensorflow when installed, which fails on machines without internet, so they are
 * loaded only if present. The wasm backend gets the kernels it lacks for training
 * and faster forms of the ones that are slow there (`kernels/fast-wasm.ts`), so the same model code trains everywhere.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';
// The umbrella package registers the gradient of every op (tfjs-core's CommonJS build has none).
import '@tensorflow/tfjs';
import { UsageError } from './errors.ts';
import { registerFastKernels } from './kernels/fast-wasm.ts';

export const BACKENDS = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];
type Concrete = Exclude<BackendChoice, 'auto'>;

export interface BackendSelection {
  /** What was asked for. */
  readonly requested: BackendChoice;
  /** Our name of the backend now active. */
  readonly backend: Concrete;
  /** tfjs's own name of it (`tensorflow`, `wasm`, `cpu`). */
  readonly tfName: string;
  /** Backends tried before it, each with the reason it was not taken. */
  readonly skipped: ReadonlyArray<{ readonly backend: Concrete; readonly reason: string }>;
  /** Kernels this module supplied because the backend lacks them. */
  readonly addedKernels: readonly string[];
}

const ORDER: readonly Concrete[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

/**
 * Whether a backend computes on this machine's CPU cores with its tensors in this process's memory
 * (wasm, cpu; tfjs's names and ours agree for both): reading a tensor back costs a copy, not a
 * device sync, and a second training thread has a core to itself to gain.
 */
export function computesOnHost(backend: string): boolean {
  return backend === 'wasm' || backend === 'cpu';
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return (message.split('\n')[0] ?? message).trim();
}

/** Loads one backend and makes it active; throws with the reason when it cannot. */
async function load(backend: Concrete): Promise<{ tfName: string; addedKernels: string[] }> {
  const addedKernels: string[] = [];
  switch (backend) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      const pkg = backend === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      let binding: { getGpuCount?: () => number };
      try {
        binding = (await import(pkg)) as typeof binding;
      } catch (err) {
        const code = (err as { code?: string }).code;
        throw new Error(code === 'ERR_MODULE_NOT_FOUND' ? `${pkg} is not installed (an optional dependency; it needs internet at install time)` : `${pkg} failed to load: ${firstLine(err)}`);
      }
      if (backend === 'tensorflow-gpu' && (binding.getGpuCount?.() ?? 1) === 0) throw new Error('no GPU visible to TensorFlow');
      break;
    }
    case 'wasm':
      await import('@tensorflow/tfjs-backend-wasm');
      addedKernels.push(...registerFastKernels('wasm'));
      break;
    case 'cpu':
      await import('@tensorflow/tfjs-backend-cpu');
      break;
  }
  const tfName = backend === 'tensorflow-gpu' ? 'tensorflow' : backend;
  // The wasm module's Emscripten runtime, started by setBackend, hooks process-wide handlers that
  // rethrow every uncaught exception and unhandled rejection; they are not a library's to keep.
  const before = new Set<unknown>([...process.listeners('uncaughtException'), ...process.listeners('unhandledRejection')]);
  try {
    if (!(await tf.setBackend(tfName))) throw new Error(`tfjs could not initialise the ${tfName} backend`);
    await tf.ready();
  } finally {
    for (const l of process.listeners('uncaughtException')) if (!before.has(l)) process.off('uncaughtException', l);
    for (const l of process.listeners('unhandledRejection')) if (!before.has(l)) process.off('unhandledRejection', l);
  }
  // Production mode only silences tfjs's console advice (such as "install tfjs-node"): the
  // selection line says which backend runs and why.
  tf.enableProdMode();
  return { tfName, addedKernels };
}

/**
 * Makes `requested` the active tfjs backend.
 * @example
 * const { backend, skipped } = await selectBackend('auto');
 * log(`backend ${backend}${skipped.map((s) => `; not ${s.backend}: ${s.reason}`).join('')}`);
 * @throws UsageError for an unknown name or when the named backend does not load.
 */
export async function selectBackend(requested: string): Promise<BackendSelection> {
  if (!(BACKENDS as readonly string[]).includes(requested)) throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}, got "${requested}"`);
  const choice = requested as BackendChoice;
  const candidates = choice === 'auto' ? ORDER : [choice];
  const skipped: Array<{ backend: Concrete; reason: string }> = [];
  for (const backend of candidates) {
    try {
      const { tfName, addedKernels } = await load(backend);
      return { requested: choice, backend, tfName, skipped, addedKernels };
    } catch (err) {
      skipped.push({ backend, reason: firstLine(err) });
    }
  }
  const reasons = skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ');
  throw new UsageError(`--backend ${choice}: no backend loaded (${reasons})`);
}

/** One line for the start of a run: the backend taken and why the others were not. */
export function describeSelection(s: BackendSelection): string {
  const added = s.addedKernels.length ? ` (with ${s.addedKernels.join(', ')} supplied)` : '';
  const skipped = s.skipped.map((k) => `${k.backend} skipped: ${k.reason}`).join('; ');
  return `backend ${s.backend}${added}${skipped ? ` — ${skipped}` : ''}`;
}

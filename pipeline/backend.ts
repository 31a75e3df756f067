/**
 * Compute-backend selection: `auto | tensorflow-gpu | webgpu | tensorflow | wasm | cpu`. `auto`
 * takes the first that loads, in that order, and says why the ones before it did not; it takes
 * webgpu only on a hardware adapter (a software one, such as Mesa's llvmpipe, trains far slower
 * than wasm and is used only when `--backend webgpu` asks for it). TensorFlow's native
 * bindings (`@tensorflow/tfjs-node-gpu`, `@tensorflow/tfjs-node`) are optional dependencies: they
 * download libtensorflow when installed, which fails on machines without internet, so they are
 * loaded only if present; so are WebGPU's (`backends/webgpu/`). The wasm backend gets the kernels it lacks for training
 * and faster forms of the ones that are slow there (`backends/wasm/`), so the same model code trains everywhere.
 *
 * Must not know about any model.
 */
import * as tf from '@tensorflow/tfjs-core';
// The umbrella package registers the gradient of every op (tfjs-core's CommonJS build has none).
import '@tensorflow/tfjs';
import { UsageError } from './errors.ts';

export const BACKENDS = ['auto', 'tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];
type Concrete = Exclude<BackendChoice, 'auto'>;

export interface BackendSelection {
  /** What was asked for. */
  readonly requested: BackendChoice;
  /** Our name of the backend now active. */
  readonly backend: Concrete;
  /** tfjs's own name of it (`tensorflow`, `webgpu`, `wasm`, `cpu`). */
  readonly tfName: string;
  /** The GPU adapter it runs on, in words (webgpu only). */
  readonly adapter?: string;
  /** Backends tried before it, each with the reason it was not taken. */
  readonly skipped: ReadonlyArray<{ readonly backend: Concrete; readonly reason: string }>;
  /** Kernels this module supplied because the backend lacks them. */
  readonly addedKernels: readonly string[];
  /**
   * wasm only: the native library its products and stride-1 convolutions run on
   * (`OpenBLAS 0.3.21 …`), or why there is none (`no native library: …`).
   */
  readonly native?: string;
}

const ORDER: readonly Concrete[] = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'];

/** Raised when the accelerator stops working mid-run (WebGPU's device lost, an uncaught GPU error). */
export class DeviceLostError extends Error {
  readonly tag = 'device-lost' as const;

  constructor(reason: string) {
    super(`${reason}; the last checkpoint is kept (--resume continues from it)`);
    this.name = 'DeviceLostError';
  }
}

/** What a backend with a device of its own (webgpu) tells of it; none for host-memory backends. */
interface DeviceHooks {
  /** Why the device stopped working, or undefined while it works. */
  fault(): string | undefined;
  /** The same, after giving the device a moment to report a loss. */
  faultAfter(): Promise<string | undefined>;
  /** Starts copying tensors to the device. */
  upload(tensors: readonly tf.Tensor[]): void;
}

let device: DeviceHooks | undefined;

/**
 * Starts copying `tensors` to the active backend's device now, rather than at their first use, so
 * that a batch crosses to a GPU while the step before it runs. A no-op where tensors live in this
 * process's memory.
 */
export function uploadAhead(tensors: readonly tf.Tensor[]): void {
  device?.upload(tensors);
}

/**
 * Throws when the active backend's device has failed since it was chosen. Results computed after
 * such a failure are garbage (WebGPU reports errors as events, not exceptions), so a trainer calls
 * this before it trusts a step or writes a checkpoint.
 * @throws DeviceLostError naming what happened.
 */
export function assertBackendHealthy(): void {
  const reason = device?.fault();
  if (reason) throw new DeviceLostError(reason);
}

/**
 * After an operation failed: the device's failure when there is one (waiting briefly for the device
 * to report it), so that the error names the cause rather than its symptom.
 */
export async function deviceFailure(): Promise<DeviceLostError | undefined> {
  const reason = await device?.faultAfter();
  return reason ? new DeviceLostError(reason) : undefined;
}

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
async function load(backend: Concrete, requested: BackendChoice): Promise<{ tfName: string; addedKernels: string[]; adapter?: string; native?: string }> {
  const addedKernels: string[] = [];
  let adapter: string | undefined;
  let native: string | undefined;
  device = undefined;
  switch (backend) {
    case 'webgpu': {
      let webgpu: typeof import('../backends/webgpu/index.ts');
      try {
        webgpu = await import('../backends/webgpu/index.ts');
      } catch (err) {
        throw new Error(`the WebGPU backend failed to load: ${firstLine(err)}`);
      }
      const choice = await webgpu.chooseAdapter(requested === 'webgpu');
      await webgpu.registerWebGpu(choice.adapter);
      adapter = `${webgpu.describeAdapter(choice.adapter)}${choice.skipped.length ? ` (not taken: ${choice.skipped.join('; ')})` : ''}`;
      device = { fault: webgpu.webgpuFault, faultAfter: webgpu.webgpuFaultAfter, upload: webgpu.uploadToDevice };
      break;
    }
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
    case 'wasm': {
      await import('@tensorflow/tfjs-backend-wasm');
      const fast = (await import('../backends/wasm/index.ts')).registerFastKernels('wasm');
      addedKernels.push(...fast.kernels);
      native = fast.native.blas ? fast.native.blas.description : `no native library: ${fast.native.reason}`;
      break;
    }
    case 'cpu':
      await import('@tensorflow/tfjs-backend-cpu');
      break;
  }
  const tfName = backend === 'tensorflow-gpu' ? 'tensorflow' : backend;
  if (backend !== 'webgpu') await releaseWebGpuIfLoaded();
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
  return { tfName, addedKernels, ...(adapter && { adapter }), ...(native && { native }) };
}

/** Closes an open WebGPU device (Dawn keeps the process alive while one is open). */
async function releaseWebGpuIfLoaded(): Promise<void> {
  if (!tf.findBackendFactory('webgpu')) return;
  const webgpu = await import('../backends/webgpu/index.ts');
  webgpu.releaseWebGpu();
}

/**
 * Releases what the active backend holds outside tfjs's tensors (an open GPU device), so that the
 * process can exit. A later `selectBackend` opens it again.
 */
export async function releaseBackend(): Promise<void> {
  await releaseWebGpuIfLoaded();
  device = undefined;
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
      const { tfName, addedKernels, adapter, native } = await load(backend, choice);
      return { requested: choice, backend, tfName, skipped, addedKernels, ...(adapter && { adapter }), ...(native && { native }) };
    } catch (err) {
      skipped.push({ backend, reason: firstLine(err) });
    }
  }
  const reasons = skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ');
  throw new UsageError(`--backend ${choice}: no backend loaded (${reasons})`);
}

/** One line for the start of a run: the backend taken and why the others were not. */
export function describeSelection(s: BackendSelection): string {
  const native = s.native === undefined ? '' : s.native.startsWith('no native') ? `; ${s.native}` : `; products and stride-1 convolutions on ${s.native}`;
  const added = s.addedKernels.length ? ` (with ${s.addedKernels.join(', ')} supplied${native})` : '';
  const skipped = s.skipped.map((k) => `${k.backend} skipped: ${k.reason}`).join('; ');
  const adapter = s.adapter ? ` on ${s.adapter}` : '';
  return `backend ${s.backend}${adapter}${added}${skipped ? ` — ${skipped}` : ''}`;
}

/**
 * The WebGPU backend under Node: `@tensorflow/tfjs-backend-webgpu` over Dawn's Node bindings (npm
 * package `webgpu`, which ships `dawn.node`). Both are optional dependencies, loaded only here.
 *
 * Dawn reaches a GPU by one of two routes on Linux:
 * - `vulkan`: hardware drivers (NVIDIA, AMD, Intel) through the system's Vulkan loader `libvulkan.so.1`
 *   and the driver's ICD file. Dawn refuses Mesa's lavapipe (it lacks
 *   shaderUniform*ArrayDynamicIndexing).
 * - `opengles`: EGL and OpenGL ES, requested at WebGPU's `compatibility` feature level. On a
 *   machine without a GPU this is Mesa's llvmpipe, a software rasteriser: slow, but every kernel of
 *   the backend runs on it, so the tests exercise the real WebGPU code on every machine.
 *
 * Adapters are discovered by `probe.mjs` in a child process: Dawn writes its warnings straight to
 * the process's stderr, which the probe captures as the reasons a route failed, and a driver that
 * crashes while probed does not take the run with it. The chosen route is then opened in this
 * process and registered with tfjs in place of the package's own factory, which requests a
 * core-level adapter only (no llvmpipe) and needs `navigator.gpu`.
 *
 * Must not know about any model.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { registerLimitWrappers } from './limits.ts';

export const ROUTES = ['vulkan', 'opengles'] as const;
export type Route = (typeof ROUTES)[number];

/** What Dawn says of an adapter (WebGPU's GPUAdapterInfo), and whether it computes in software. */
export interface AdapterReport {
  readonly route: Route;
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** A CPU rasteriser (llvmpipe, lavapipe, SwiftShader) or an adapter Dawn calls a fallback. */
  readonly software: boolean;
}

/** One route's outcome: the adapter it gives, or why it gives none. */
export type ProbeResult = { readonly route: Route; readonly adapter: AdapterReport } | { readonly route: Route; readonly reason: string };

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software/i;

/** Dawn's flags and the adapter request of each route. */
const REQUESTS: Record<Route, { flags: string[]; request: Record<string, string> }> = {
  vulkan: { flags: ['backend=vulkan'], request: { powerPreference: 'high-performance' } },
  opengles: { flags: ['backend=opengles'], request: { powerPreference: 'high-performance', featureLevel: 'compatibility' } },
};

/** Dawn's OpenGL ES route needs EGL without a display server (Mesa's llvmpipe, headless GPUs), unless the user sets another. */
function eglPlatform(): string {
  return process.env['EGL_PLATFORM'] ?? 'surfaceless';
}

/** The part of Dawn's objects this module uses (the packages are optional, so no types from them). */
interface GpuAdapter {
  readonly info: Record<string, unknown>;
  readonly limits: Record<string, number>;
  requestDevice(descriptor: object): Promise<GpuDevice>;
}
export interface GpuDevice {
  readonly lost: Promise<{ reason: string; message: string }>;
  addEventListener(type: 'uncapturederror', listener: (event: { error: { message: string } }) => void): void;
  destroy(): void;
}
interface Gpu {
  requestAdapter(options: object): Promise<GpuAdapter | null>;
}

/** Where Vulkan's loader and drivers are looked for when saying why the vulkan route failed. */
function vulkanHint(stderr: string): string | undefined {
  if (/libvulkan\.so\.1/.test(stderr)) return 'the Vulkan loader libvulkan.so.1 is missing (Debian/Ubuntu: apt-get install libvulkan1)';
  if (/shaderUniform\w*ArrayDynamicIndexing/.test(stderr)) return "the only Vulkan device is Mesa's lavapipe, which Dawn refuses";
  const icdDirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
  const named = process.env['VK_DRIVER_FILES'] ?? process.env['VK_ICD_FILENAMES'];
  if (!named && !icdDirs.some((d) => existsSync(d))) return `no Vulkan driver (ICD) registered: none in ${icdDirs.join(', ')}; set VK_DRIVER_FILES to the driver's ICD json (NVIDIA: nvidia_icd.json)`;
  return undefined;
}

function eglHint(stderr: string): string | undefined {
  if (/eglInitialize|EGL/.test(stderr)) return 'EGL could not initialise (needs libEGL and a Mesa or vendor driver: apt-get install libegl1 libgles2 libegl-mesa0)';
  return undefined;
}

/** The first of Dawn's own lines in a probe's stderr, trimmed to one line. */
function dawnLine(stderr: string): string | undefined {
  const line = stderr.split('\n').find((l) => /^(Warning|Error):/.test(l.trim()) && !/artificially reduced/.test(l));
  return line?.trim().replace(/^(Warning|Error):\s*/, '');
}

const probeScript = fileURLToPath(new URL('./probe.mjs', import.meta.url));

/**
 * Asks Dawn, in a child process, for an adapter on each route.
 * @throws Error when the `webgpu` package is not installed.
 */
export async function probeAdapters(routes: readonly Route[] = ROUTES): Promise<ProbeResult[]> {
  const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    const args = routes.map((route) => JSON.stringify({ route, ...REQUESTS[route] }));
    execFile(process.execPath, [probeScript, ...args], { timeout: 60_000, maxBuffer: 1 << 20, env: { ...process.env, EGL_PLATFORM: eglPlatform() } }, (err, stdout, stderr) => {
      if (err && /ERR_MODULE_NOT_FOUND|Cannot find package 'webgpu'/.test(stderr)) reject(new Error('the npm package webgpu is not installed (an optional dependency)'));
      else if (err && !stdout) reject(new Error(`the WebGPU probe failed: ${dawnLine(stderr) ?? (stderr.trim().split('\n').pop() || err.message)}`));
      else resolve({ stdout, stderr });
    });
  });
  const found = new Map<string, ProbeResult>();
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { route: Route; adapter?: Omit<AdapterReport, 'route' | 'software'> & { isFallbackAdapter: boolean }; error?: string };
    if (r.adapter) {
      const a = r.adapter;
      const software = a.isFallbackAdapter || SOFTWARE.test(`${a.vendor} ${a.architecture} ${a.device} ${a.description}`);
      found.set(r.route, { route: r.route, adapter: { route: r.route, vendor: a.vendor, architecture: a.architecture, device: a.device, description: a.description, software } });
    } else {
      const hint = r.route === 'vulkan' ? vulkanHint(stderr) : eglHint(stderr);
      found.set(r.route, { route: r.route, reason: hint ?? dawnLine(stderr) ?? r.error ?? 'no adapter' });
    }
  }
  // A route the probe never reported on crashed it.
  return routes.map((route) => found.get(route) ?? { route, reason: `the probe crashed: ${dawnLine(stderr) ?? 'no output'}` });
}

/** One line naming an adapter: vendor, architecture, device, driver. */
export function describeAdapter(a: AdapterReport): string {
  const parts = [a.vendor, a.architecture, a.device].filter(Boolean).join(' ');
  return `${parts || 'unnamed adapter'}${a.description ? ` (${a.description})` : ''} via ${a.route}${a.software ? ', software' : ''}`;
}

let active: { device: GpuDevice; lost?: string; releasing: boolean; settled: Promise<void> } | undefined;

/** Why the active WebGPU device stopped working (lost, or an error the backend did not catch); undefined while it works. */
export function webgpuFault(): string | undefined {
  return active?.lost;
}

/**
 * The same, after giving the device up to `waitMs` to report a loss: when a read fails, Dawn may
 * reject it before the device's `lost` promise settles, and the loss is the cause to name. A loss
 * already reported is returned at once.
 */
export async function webgpuFaultAfter(waitMs = 1000): Promise<string | undefined> {
  const state = active;
  if (!state || state.lost) return state?.lost;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([state.settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
  clearTimeout(timer);
  return state.lost;
}

/**
 * Writes tensors that still live in host memory to GPU buffers now (the backend otherwise does it
 * at their first use, inside the step that needs them).
 */
export function uploadToDevice(tensors: readonly tf.Tensor[]): void {
  const backend = tf.backend() as unknown as { uploadToGPU?: (dataId: tf.DataId) => void };
  if (tf.getBackend() !== 'webgpu' || !backend.uploadToGPU) return;
  for (const t of tensors) backend.uploadToGPU(t.dataId);
}

/** The active device, for tests that make it fail. */
export function webgpuDevice(): GpuDevice | undefined {
  return active?.device;
}

/**
 * Destroys the active device and unregisters the backend, so that the process can exit (Dawn keeps
 * the event loop alive while a device is open) and a later load opens a fresh device.
 */
export function releaseWebGpu(): void {
  if (!active) return;
  active.releasing = true;
  // tfjs disposes the backend's buffers and, when it was the active one, has none active after.
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  active.device.destroy();
  active = undefined;
}

export interface WebGpuChoice {
  readonly adapter: AdapterReport;
  /** Routes or adapters not taken, each with the reason. */
  readonly skipped: readonly string[];
}

/**
 * Picks an adapter: the first hardware one, else a software one when `allowSoftware`.
 * @throws Error naming every route tried and why it failed, with how to fix it.
 */
export async function chooseAdapter(allowSoftware: boolean): Promise<WebGpuChoice> {
  const results = await probeAdapters();
  const skipped: string[] = [];
  let software: AdapterReport | undefined;
  for (const r of results) {
    if ('reason' in r) skipped.push(`${r.route}: ${r.reason}`);
    else if (!r.adapter.software) return { adapter: r.adapter, skipped };
    else {
      software ??= r.adapter;
      if (!allowSoftware) skipped.push(`${r.route}: ${r.adapter.device || r.adapter.description} is a software adapter (--backend webgpu uses it)`);
    }
  }
  if (software && allowSoftware) return { adapter: software, skipped };
  throw new Error(`no ${allowSoftware ? '' : 'hardware '}WebGPU adapter (${skipped.join('; ')})`);
}

/**
 * Opens `adapter`'s route in this process and makes tfjs's `webgpu` backend use it (not yet active:
 * `tf.setBackend('webgpu')` initialises it).
 */
export async function registerWebGpu(adapter: AdapterReport): Promise<void> {
  releaseWebGpu();
  const dawnPackage = 'webgpu';
  const backendPackage = '@tensorflow/tfjs-backend-webgpu';
  const dawn = (await import(dawnPackage)) as { create(flags: string[]): Gpu; globals: object };
  // GPUBufferUsage, GPUMapMode and the other constants the backend reads as globals.
  for (const [name, value] of Object.entries(dawn.globals)) if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  process.env['EGL_PLATFORM'] = eglPlatform();
  const { flags, request } = REQUESTS[adapter.route];
  const gpu = dawn.create(flags);
  // The backend checks navigator.gpu when it starts; Node ≥ 21 has a navigator without one.
  const nav = (globalThis as { navigator?: object }).navigator;
  if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  const mod = (await import(backendPackage)) as { WebGPUBackend?: WebGpuBackendClass; default?: { WebGPUBackend: WebGpuBackendClass } };
  const WebGPUBackend = mod.WebGPUBackend ?? mod.default?.WebGPUBackend;
  if (!WebGPUBackend) throw new Error(`${backendPackage} has no WebGPUBackend export`);
  registerLimitWrappers('webgpu');
  // The package registered a factory of its own when navigator.gpu was first seen.
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', async () => {
    const found = await gpu.requestAdapter(request);
    if (!found) throw new Error(`Dawn no longer finds the ${adapter.route} adapter it found when probed`);
    const l = found.limits;
    const device = await found.requestDevice({
      requiredLimits: {
        maxComputeWorkgroupStorageSize: l['maxComputeWorkgroupStorageSize'],
        maxComputeWorkgroupsPerDimension: l['maxComputeWorkgroupsPerDimension'],
        maxStorageBufferBindingSize: l['maxStorageBufferBindingSize'],
        maxBufferSize: l['maxBufferSize'],
        maxComputeWorkgroupSizeX: l['maxComputeWorkgroupSizeX'],
        maxComputeInvocationsPerWorkgroup: l['maxComputeInvocationsPerWorkgroup'],
      },
    });
    const state: NonNullable<typeof active> = { device, releasing: false, settled: Promise.resolve() };
    active = state;
    state.settled = device.lost.then((info) => {
      if (!state.releasing) state.lost ??= `the GPU device was lost (${info.reason}${info.message ? `: ${info.message.split('\n')[0]}` : ''})`;
    });
    device.addEventListener('uncapturederror', (event) => {
      state.lost ??= `GPU error: ${event.error.message.split('\n')[0]}`;
    });
    return new WebGPUBackend(device, found.info);
  });
}

type WebGpuBackendClass = new (device: GpuDevice, info: unknown) => tf.KernelBackend;

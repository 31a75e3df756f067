// Lists the WebGPU adapters Dawn (npm package `webgpu`) finds on this machine, one JSON object
// per route on stdout. It runs as its own process so that Dawn's native warnings (written
// straight to stderr) are captured as reasons instead of reaching the user's terminal, and so
// that a driver that crashes while being probed takes only this process with it.
//
// Usage: node probe.mjs ROUTE...   (routes: vulkan, opengles)
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
// Dawn's OpenGL ES route needs EGL without a display server (Mesa's llvmpipe, headless GPUs).
process.env.EGL_PLATFORM ??= 'surfaceless';

const ROUTES = {
  vulkan: { flags: ['backend=vulkan'], request: { powerPreference: 'high-performance' } },
  opengles: { flags: ['backend=opengles'], request: { powerPreference: 'high-performance', featureLevel: 'compatibility' } },
};

for (const route of process.argv.slice(2)) {
  const spec = ROUTES[route];
  if (!spec) {
    process.stdout.write(`${JSON.stringify({ route, error: `unknown route "${route}"` })}\n`);
    continue;
  }
  try {
    const adapter = await create(spec.flags).requestAdapter(spec.request);
    if (!adapter) {
      process.stdout.write(`${JSON.stringify({ route, error: 'no adapter' })}\n`);
      continue;
    }
    const { vendor, architecture, device, description } = adapter.info;
    const isFallbackAdapter = Boolean(adapter.info.isFallbackAdapter ?? adapter.isFallbackAdapter);
    process.stdout.write(`${JSON.stringify({ route, adapter: { vendor, architecture, device, description, isFallbackAdapter } })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ route, error: err instanceof Error ? err.message : String(err) })}\n`);
  }
}
// Dawn's instance keeps the event loop alive while referenced.
process.exit(0);

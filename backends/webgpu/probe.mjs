// Lists the WebGPU adapters Dawn (npm package `webgpu`) finds on this machine, one JSON object
// per route on stdout. It runs as its own process so that Dawn's native warnings (written
// straight to stderr) are captured as reasons instead of reaching the user's terminal, and so
// that a driver that crashes while being probed takes only this process with it.
//
// Usage: node probe.mjs '{"route":…,"flags":[…],"request":{…}}'...   (one argument a route, as
// index.ts defines them; EGL_PLATFORM set by the caller)
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
for (const argument of process.argv.slice(2)) {
  const { route, ...spec } = JSON.parse(argument);
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

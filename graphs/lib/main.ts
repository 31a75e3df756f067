/**
 * Lets a graph file run on its own: `npx tsx graphs/<name>.ts [options]` is `st-inpaint run <name>
 * [options]`. The command runs in a child process rather than being imported, so graphs never
 * import the CLI (which loads the graphs): data flows one way, datasets → stages → graphs → CLI.
 */
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/st-inpaint.js', import.meta.url));

export function runIfMain(moduleUrl: string, graph: string): void {
  if (!process.argv[1] || realpathSync(process.argv[1]) !== fileURLToPath(moduleUrl)) return;
  const child = spawn(process.execPath, [BIN, 'run', graph, ...process.argv.slice(2)], { stdio: 'inherit' });
  // Ctrl-C reaches the child from the terminal; this process waits for it to tear down.
  const ignore = (): void => {};
  process.on('SIGINT', ignore);
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  child.on('exit', (code, signal) => {
    process.off('SIGINT', ignore);
    process.exitCode = code ?? (signal ? 128 + 2 : 1);
  });
}

/**
 * Lets a graph file run on its own: `npx tsx graphs/<name>.ts [options]` is `st-inpaint run <name>
 * [options]`. No top-level await: the CLI's graph registry imports the same module.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function runIfMain(moduleUrl: string, graph: string): void {
  if (!process.argv[1] || realpathSync(process.argv[1]) !== fileURLToPath(moduleUrl)) return;
  void import('../../cli/main.ts')
    .then(({ main }) => main(['run', graph, ...process.argv.slice(2)]))
    .then((code) => (process.exitCode = code));
}

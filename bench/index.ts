/**
 * Benchmarks: `npm run bench -- <name> [--json]`. Each prints measured figures and ratios; with
 * `--json` the last line is one JSON object. Never part of `npm test`.
 */
import { pipelineBench } from './pipeline.ts';
import { trainBench } from './train.ts';
import { bairStreamBench } from './bair-stream.ts';
import { kthDecodeBench } from './kth-decode.ts';
import { distributedBench } from './distributed.ts';

const benches: Record<string, (json: boolean, args: readonly string[]) => Promise<void>> = { pipeline: pipelineBench, train: trainBench, 'bair-stream': bairStreamBench, 'kth-decode': kthDecodeBench, distributed: distributedBench };

const [name, ...rest] = process.argv.slice(2);
const bench = name ? benches[name] : undefined;
if (!bench) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [--json]\n`);
  process.exit(2);
}
await bench(rest.includes('--json'), rest);

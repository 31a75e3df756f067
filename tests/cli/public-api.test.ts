/**
 * The public API: a graph file outside this repository imports the framework by package name
 * (`st-inpaint`, `st-inpaint/graphs`), inserts its own stage into the demo's chain, and runs end to
 * end through `st-inpaint run FILE`; its stage is metered like the built-in ones.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';

const folder = mkdtempSync(join(tmpdir(), 'st-inpaint-user-'));
after(() => rmSync(folder, { recursive: true, force: true }));
const BIN = fileURLToPath(new URL('../../bin/st-inpaint.js', import.meta.url));

const GRAPH = `
import { defineGraph, map } from 'st-inpaint';
import { buildDemo, DEMO_PARAMS } from 'st-inpaint/graphs';
import { Random } from 'st-inpaint/stages';

export default defineGraph({
  name: 'mirror-demo',
  description: 'The demo with half of the training clips mirrored left to right',
  params: DEMO_PARAMS,
  build: (p, context) =>
    buildDemo(p, context, {
      preprocess: [
        map('mirror', (clip: { id: string; frames: Uint8Array }) => {
          if (Random.fromKey(p.seed, 'mirror', clip.id).uniform() < 0.5) return clip;
          const frames = new Uint8Array(clip.frames.length);
          for (let row = 0; row < clip.frames.length / p.size; row++)
            for (let x = 0; x < p.size; x++) frames[row * p.size + x] = clip.frames[row * p.size + p.size - 1 - x]!;
          return { ...clip, frames };
        }),
      ],
    }),
});
`;

test('a graph file in any folder imports st-inpaint by name, adds a stage, and runs; the stage is in the telemetry', () => {
  const file = join(folder, 'mirror-demo.mts');
  writeFileSync(file, GRAPH);
  const runs = join(folder, 'runs');
  const r = spawnSync('node', [BIN, 'run', file, '--steps', '2', '--batch', '2', '--clips', '24', '--frames', '4', '--size', '16', '--eval-clips', '2', '--backend', 'wasm', '--threads', '1', '--out', runs], { cwd: folder, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  const runDir = join(runs, 'mirror-demo', readdirSync(join(runs, 'mirror-demo'))[0]!);
  const entries = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; step?: number; stages?: Array<{ stage: string; items: number }> });
  assert.deepEqual(entries.filter((e) => e.type === 'step').map((e) => e.step), [1, 2]);
  const telemetry = entries.find((e) => e.type === 'telemetry')!.stages!;
  const mirror = telemetry.find((s) => s.stage === 'mirror');
  assert.ok(mirror && mirror.items >= 4, `mirror in the telemetry: ${JSON.stringify(telemetry.map((s) => s.stage))}`);
});

test("the README's own-graph example runs verbatim from a folder outside the repository", () => {
  const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
  const section = readme.slice(readme.indexOf('### Writing your own graph'));
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, 'the section has a ts block');
  const file = join(folder, 'squares.mts');
  writeFileSync(file, code);
  const r = spawnSync('node', [BIN, 'run', './squares.mts', '--count', '10', '--out', join(folder, 'runs')], { cwd: folder, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const runs = join(folder, 'runs', 'squares');
  const metrics = readFileSync(join(runs, readdirSync(runs)[0]!, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; stages?: Array<{ stage: string; items: number }> });
  assert.deepEqual(metrics.find((e) => e.type === 'telemetry')!.stages!.map((s) => [s.stage, s.items]).sort(), [['numbers', 10], ['square', 10]]);
});

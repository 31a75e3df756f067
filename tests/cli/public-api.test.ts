/**
 * The public API: graph files outside this repository import the framework by package name
 * (`st-inpaint`, `st-inpaint/stages`, `st-inpaint/graphs`) and run through `st-inpaint run FILE`.
 * The README's two examples run verbatim: a graph of its own, and the kth-raindrops chain with a
 * stage of the user's inserted, which `describe` lists and the run meters like the built-in ones.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { writeKthFixture } from '../fixtures/kth.ts';

const folder = mkdtempSync(join(tmpdir(), 'st-inpaint-user-'));
after(() => rmSync(folder, { recursive: true, force: true }));
const BIN = fileURLToPath(new URL('../../bin/st-inpaint.js', import.meta.url));

const kth = join(folder, 'kth');
before(() =>
  writeKthFixture(folder, kth, [
    { action: 'boxing', name: 'person11_boxing_d1', frames: 30, ranges: [[1, 15], [16, 30]] },
    { action: 'walking', name: 'person22_walking_d1', frames: 30, ranges: [[1, 15], [16, 30]] },
  ]),
);

/** The code block of a README section (the test runs it verbatim). */
function readmeBlock(heading: string): string {
  const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
  const at = readme.indexOf(heading);
  assert.ok(at >= 0, `README has "${heading}"`);
  const code = /```ts\n([\s\S]*?)```/.exec(readme.slice(at))?.[1];
  assert.ok(code, `"${heading}" has a ts block`);
  return code;
}

const cli = (args: string[], timeout = 300_000) => spawnSync('node', [BIN, ...args], { cwd: folder, encoding: 'utf8', timeout });

test("the README's own stage, inserted into the kth-raindrops chain in a folder outside the repository, is in describe and in the run's telemetry", () => {
  writeFileSync(join(folder, 'mirrored-kth.mts'), readmeBlock('### Adding your own stage'));
  const options = ['--source', kth, '--dataset-option', 'split-by=person', '--preset', 'cpu', '--steps', '2', '--batch', '2', '--frames', '4', '--size', '16', '--base', '2', '--eval-clips', '2', '--backend', 'wasm', '--threads', '1'];
  const described = cli(['describe', './mirrored-kth.mts', ...options, '--json']);
  assert.equal(described.status, 0, described.stderr);
  const graph = JSON.parse(described.stdout) as { stages: string[]; edges: Array<{ from: string; to: string }> };
  // The new stage sits between fitting and occlusion.
  assert.ok(graph.edges.some((e) => e.from === 'fit' && e.to === 'mirror'), JSON.stringify(graph.edges));
  assert.ok(graph.edges.some((e) => e.from === 'mirror' && e.to === 'occlude-raindrops'), JSON.stringify(graph.edges));
  const runs = join(folder, 'runs');
  const r = cli(['run', './mirrored-kth.mts', ...options, '--out', runs]);
  assert.equal(r.status, 0, r.stderr);
  const runDir = join(runs, 'mirrored-kth', readdirSync(join(runs, 'mirrored-kth'))[0]!);
  const entries = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; step?: number; stages?: Array<{ stage: string; items: number }> });
  assert.deepEqual(entries.filter((e) => e.type === 'step').map((e) => e.step), [1, 2]);
  const telemetry = entries.find((e) => e.type === 'telemetry')!.stages!;
  assert.deepEqual(telemetry.map((s) => s.stage).sort(), [...graph.stages].sort());
  assert.ok(telemetry.find((s) => s.stage === 'mirror')!.items >= 4);
});

test("the README's own-graph example runs verbatim from a folder outside the repository", () => {
  writeFileSync(join(folder, 'squares.mts'), readmeBlock('### Writing your own graph'));
  const r = cli(['run', './squares.mts', '--count', '10', '--out', join(folder, 'runs')], 120_000);
  assert.equal(r.status, 0, r.stderr);
  const runs = join(folder, 'runs', 'squares');
  const metrics = readFileSync(join(runs, readdirSync(runs)[0]!, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; stages?: Array<{ stage: string; items: number }> });
  assert.deepEqual(metrics.find((e) => e.type === 'telemetry')!.stages!.map((s) => [s.stage, s.items]).sort(), [['numbers', 10], ['square', 10]]);
});

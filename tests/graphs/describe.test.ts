/**
 * `describe` lists the stages a graph's build composes, derived from the graph itself: for every
 * graph that runs here in seconds, exactly the stage names the run's telemetry records, and a
 * graph built in a user's file lists its own stages too.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import customStageExample from '../../graphs/custom-stage-example.ts';
import demo from '../../graphs/demo.ts';
import faceforensicsRaindrops from '../../graphs/faceforensics-raindrops.ts';
import kthRaindrops from '../../graphs/kth-raindrops.ts';
import streamCheck from '../../graphs/stream-check.ts';
import { describeGraph, resolveParams, type GraphDefinition } from '../../pipeline/graph.ts';
import { runGraph } from '../../pipeline/runner.ts';
import { writeKthFixture } from '../fixtures/kth.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-describe-'));
const kth = join(scratch, 'kth');
before(() =>
  writeKthFixture(scratch, kth, [
    { action: 'boxing', name: 'person11_boxing_d1', frames: 30, ranges: [[1, 15], [16, 30]] },
    { action: 'walking', name: 'person22_walking_d1', frames: 30, ranges: [[1, 15], [16, 30]] },
  ]),
);
after(() => rmSync(scratch, { recursive: true, force: true }));

const small = { batch: 2, frames: 4, size: 16, base: 2, backend: 'wasm', threads: 1, 'eval-clips': 2 };
const cases: Array<[GraphDefinition, Record<string, unknown>]> = [
  [demo, { ...small, clips: 24, steps: 1 }],
  [customStageExample, { ...small, clips: 24, steps: 1 }],
  [streamCheck, { clips: 16 }],
  [kthRaindrops, { ...small, source: kth, preset: 'cpu', 'dataset-option': 'split-by=person', steps: 1 }],
];

for (const [graph, given] of cases) {
  test(`describe ${graph.name}: the stages its run meters, no more, no fewer`, async () => {
    const described = describeGraph(graph, resolveParams(graph, given));
    assert.equal(described.unbuilt, undefined);
    const run = await runGraph(graph, given, { progress: false, handleSignals: false, log: () => {}, runsDir: join(scratch, 'runs') });
    assert.deepEqual([...described.stages].sort(), run.stats.map((s) => s.stage).sort());
  });
}

test('a graph that needs an option says which instead of listing stages', () => {
  const described = describeGraph(faceforensicsRaindrops, resolveParams(faceforensicsRaindrops, {}));
  assert.deepEqual(described.stages, []);
  assert.match(described.unbuilt ?? '', /needs --source/);
  // Its parameter counts do not need the data.
  assert.ok((described.parameters?.['generator'] ?? 0) > 0);
});

/**
 * `describe` lists the stages a graph's build composes, derived from the graph itself: for every
 * graph (the demo, its custom-stage example, the stream check, and the paper's chain on each
 * dataset, from fixtures), exactly the stage names the run's telemetry records, with edges that
 * follow the chain. A graph built in a user's file lists its own stages too (tests/cli/public-api.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import bairRaindrops from '../../graphs/bair-raindrops.ts';
import sstClouds from '../../graphs/sst-clouds.ts';
import faceforensicsMovingBar from '../../graphs/faceforensics-moving-bar.ts';
import { ffmpegPath } from '../../stages/io/video.ts';
import { bairTfrecords, packBairTar } from '../fixtures/bair.ts';
import { writeSstFixture } from '../fixtures/netcdf.ts';
import customStageExample from '../../graphs/custom-stage-example.ts';
import demo from '../../graphs/demo.ts';
import faceforensicsRaindrops from '../../graphs/faceforensics-raindrops.ts';
import faceforensicsPaired from '../../graphs/faceforensics-raindrops-paired.ts';
import faceforensicsUnpaired from '../../graphs/faceforensics-raindrops-unpaired.ts';
import sstStatic from '../../graphs/sst-clouds-static.ts';
import sstRecurrent from '../../graphs/sst-clouds-recurrent.ts';
import kthRaindrops from '../../graphs/kth-raindrops.ts';
import streamCheck from '../../graphs/stream-check.ts';
import { describeGraph, loadGraphs, resolveParams, type GraphDefinition } from '../../pipeline/graph.ts';
import { runGraph } from '../../pipeline/runner.ts';
import { writeKthFixture } from '../fixtures/kth.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-describe-'));
const kth = join(scratch, 'kth');
const bair = join(scratch, 'bair.tar');
const sst = join(scratch, 'sst');
const videos = join(scratch, 'videos');
before(async () => {
  writeKthFixture(scratch, kth, [
    { action: 'boxing', name: 'person11_boxing_d1', frames: 30, ranges: [[1, 15], [16, 30]] },
    { action: 'walking', name: 'person22_walking_d1', frames: 30, ranges: [[1, 15], [16, 30]] },
  ]);
  await packBairTar([{ path: 'softmotion30_44k/train/traj_0_to_255.tfrecords', bytes: bairTfrecords(0, 3) }, { path: 'softmotion30_44k/test/traj_0_to_255.tfrecords', bytes: bairTfrecords(1, 2) }], bair);
  mkdirSync(sst);
  await writeSstFixture(join(sst, 'a-2018.nc'), { start: new Date(Date.UTC(2018, 11, 30)), times: 60, depths: 1, height: 16, width: 16, celsius: (t, _d, y, x) => 20 + 0.1 * x + 0.05 * y + 0.01 * t });
  await writeSstFixture(join(sst, 'b-2019.nc'), { start: new Date(Date.UTC(2019, 0, 1)), times: 30, depths: 1, height: 16, width: 16, celsius: (t, _d, y, x) => 22 - 0.1 * x + 0.02 * t });
  mkdirSync(videos);
  // Enough videos that the seeded 5/5/90 split gives both a train and a test video.
  for (let i = 0; i < 30; i++) execFileSync(ffmpegPath(), ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=size=96x64:rate=25,hue=h=${i * 12}`, '-frames:v', '8', '-c:v', 'mpeg4', join(videos, `v${String(i).padStart(2, '0')}.mp4`)]);
});
after(() => rmSync(scratch, { recursive: true, force: true }));

const small = { batch: 2, frames: 4, size: 16, base: 2, backend: 'wasm', threads: 1, 'eval-clips': 2 };
const cases: Array<[GraphDefinition, Record<string, unknown>]> = [
  [demo, { ...small, clips: 24, steps: 1 }],
  [customStageExample, { ...small, clips: 24, steps: 1 }],
  [streamCheck, { clips: 16 }],
  // Three steps of two clips: more than the train split, so the shuffle reads it in several epochs.
  [kthRaindrops, { ...small, source: kth, preset: 'cpu', 'dataset-option': 'split-by=person', steps: 3 }],
  [bairRaindrops, { ...small, source: bair, preset: 'cpu', steps: 2 }],
  [sstClouds, { ...small, source: sst, preset: 'cpu', size: 16, steps: 1, 'dataset-option': 'interval=1,stride=4,val-sequences=1' }],
  [faceforensicsMovingBar, { ...small, source: videos, preset: 'cpu', steps: 1, 'dataset-option': 'crop=centre,clips-per-video=1' }],
  // The paper's other models, end to end at --preset cpu.
  [faceforensicsPaired, { ...small, source: videos, preset: 'cpu', steps: 2, 'dataset-option': 'crop=centre,clips-per-video=1' }],
  [faceforensicsUnpaired, { ...small, source: videos, preset: 'cpu', steps: 2, 'dataset-option': 'crop=centre,clips-per-video=1' }],
  [sstStatic, { ...small, source: sst, preset: 'cpu', size: 16, steps: 2, 'dataset-option': 'interval=1,stride=4,val-sequences=1' }],
  [sstRecurrent, { ...small, source: sst, preset: 'cpu', size: 16, steps: 2, 'dataset-option': 'interval=1,stride=4,val-sequences=1' }],
];

for (const [graph, given] of cases) {
  test(`describe ${graph.name}: the stages its run meters, no more, no fewer`, async () => {
    const described = describeGraph(graph, resolveParams(graph, given));
    assert.equal(described.unbuilt, undefined);
    const run = await runGraph(graph, given, { progress: false, handleSignals: false, log: () => {}, runsDir: join(scratch, 'runs') });
    assert.deepEqual([...described.stages].sort(), run.stats.map((s) => s.stage).sort());
    // Every edge joins two described stages; every stage but the sources reads one.
    const names = new Set(described.stages);
    for (const e of described.edges) assert.ok(names.has(e.from) && names.has(e.to), `${e.from} → ${e.to}`);
    const sources = described.nodes.filter((n) => n.inputs.length === 0).map((n) => n.name);
    assert.ok(sources.length >= 1 && sources.length <= 2, `sources: ${sources.join(', ')}`);
    if (graph !== streamCheck) assert.ok(described.edges.some((e) => e.from === 'previews' && e.to === 'report'));
  });
}

test('every named graph builds: its stages are listed, or it says which source it needs', async () => {
  const graphs = await loadGraphs(fileURLToPath(new URL('../../graphs/', import.meta.url)));
  assert.ok(graphs.has('kth-raindrops') && graphs.has('sst-clouds') && graphs.has('demo'), [...graphs.keys()].join(', '));
  for (const graph of graphs.values()) {
    const described = describeGraph(graph, resolveParams(graph, {}));
    if (described.unbuilt) assert.match(described.unbuilt, /needs --source|--source .*: no such file/, graph.name);
    else assert.ok(described.stages.length > 0, graph.name);
  }
});

test('a graph that needs an option says which instead of listing stages', () => {
  const described = describeGraph(faceforensicsRaindrops, resolveParams(faceforensicsRaindrops, {}));
  assert.deepEqual(described.stages, []);
  assert.match(described.unbuilt ?? '', /needs --source/);
  // Its parameter counts do not need the data.
  assert.ok((described.parameters?.['generator'] ?? 0) > 0);
});

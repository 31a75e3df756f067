/**
 * The paper's experiment graphs: all listed; kth-raindrops end to end on a KTH fixture (real
 * ffmpeg-encoded AVIs in zips) with the person split: it trains on the train persons only, scores
 * on the test persons' clips, checkpoints, and writes the report; a missing --source is a usage
 * error naming it; a resumed run continues the data where it stopped.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { main } from '../../cli/main.ts';
import kthRaindrops from '../../graphs/kth-raindrops.ts';
import sstClouds from '../../graphs/sst-clouds.ts';
import { runGraph } from '../../pipeline/runner.ts';
import { writeKthFixture } from '../fixtures/kth.ts';
import { writeSstFixture } from '../fixtures/netcdf.ts';
import { zipSync } from 'fflate';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-experiments-'));
const data = join(scratch, 'kth');
after(() => rmSync(scratch, { recursive: true, force: true }));

before(() =>
  writeKthFixture(scratch, data, [
    { action: 'walking', name: 'person11_walking_d1', frames: 40, ranges: [[1, 20], [21, 40]] },
    { action: 'boxing', name: 'person12_boxing_d1', frames: 40, ranges: [[1, 20], [21, 40]] },
    { action: 'boxing', name: 'person22_boxing_d2', frames: 30, ranges: [[5, 25]] },
  ]),
);

const tiny = { source: data, preset: 'cpu', 'dataset-option': 'split-by=person', steps: 3, batch: 2, frames: 4, size: 16, base: 2, 'eval-every': 2, 'eval-clips': 4, threads: 1, backend: 'wasm', 'checkpoint-every': 2 };
const quiet = { progress: false as const, handleSignals: false, log: () => {} };
const records = (runDir: string, type: string): Array<Record<string, unknown>> =>
  readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r['type'] === type);

test('every experiment of the paper is a graph', async () => {
  const out: string[] = [];
  assert.equal(await main(['graphs'], { out: (l) => out.push(l), err: () => {} }), 0);
  const names = out.join('\n');
  for (const dataset of ['kth', 'bair', 'faceforensics']) {
    for (const occlusion of ['raindrops', 'remove-pixel', 'moving-bar']) assert.match(names, new RegExp(`^${dataset}-${occlusion} `, 'm'));
  }
  for (const other of ['sst-clouds', 'sst-clouds-static', 'sst-clouds-recurrent', 'faceforensics-raindrops-paired', 'faceforensics-raindrops-unpaired']) assert.match(names, new RegExp(`^${other} `, 'm'));
});

test('sst-clouds trains on the 2018 sequences of NetCDF-4 files and scores the 2019 ones', async () => {
  const sst = join(scratch, 'sst');
  mkdirSync(sst);
  await writeSstFixture(join(sst, 'a-2018.nc'), { start: new Date(Date.UTC(2018, 11, 20)), times: 60, depths: 1, height: 20, width: 20, celsius: (t, _d, y, x) => (y + x < 4 ? NaN : 24 + Math.sin(x / 5 + t / 10) + Math.cos(y / 7)) });
  await writeSstFixture(join(sst, 'b-2019.nc'), { start: new Date(Date.UTC(2019, 0, 1)), times: 12, depths: 1, height: 20, width: 20, celsius: (t, _d, y, x) => 26 + Math.sin(x / 6 - t / 10) + Math.cos(y / 5) });
  const run = await runGraph(sstClouds, { ...tiny, source: sst, 'dataset-option': 'val-sequences=2,interval=1,stride=6', frames: 6, threshold: 70 }, { ...quiet, runsDir: join(scratch, 'runs') });
  const evaluations = records(run.runDir, 'evaluation') as Array<{ rows: Array<{ method: string; clips: number }> }>;
  assert.deepEqual(evaluations.at(-1)!.rows.map((r) => [r.method, r.clips]), [['model', 2], ['dineof', 2], ['interpolation', 2], ['mean-fill', 2]]);
  const html = readFileSync(join(run.runDir, 'report.html'), 'utf8');
  assert.match(html, /b-2019\.nc@2019-01-01T00: observed/);
  assert.doesNotMatch(html, /a-2018\.nc@/);
});

test('kth-raindrops trains on the train persons and scores the test person, with report and checkpoints; resume continues', async () => {
  const run = await runGraph(kthRaindrops, { ...tiny, 'checkpoint-every': 2 }, { ...quiet, runsDir: join(scratch, 'runs') });
  const steps = records(run.runDir, 'step');
  assert.deepEqual(steps.map((s) => s['position']), [2, 4, 6], 'two clips an iteration, into the second epoch of four train clips');
  const evaluations = records(run.runDir, 'evaluation') as Array<{ step: number; rows: Array<{ method: string; clips: number }> }>;
  assert.deepEqual(evaluations.map((e) => e.step), [2, 3]);
  assert.deepEqual(evaluations[0]!.rows.map((r) => [r.method, r.clips]), [['model', 1], ['dineof', 1], ['interpolation', 1], ['mean-fill', 1]], 'person 22 has the one test clip');
  // The held-out clips are a sample of the whole split, and the run says how many it saw.
  assert.ok(records(run.runDir, 'log').some((l) => /^evaluation sample: 1 of the 1 test clips, drawn uniformly with seed 1$/.test(String(l['message']))));
  const html = readFileSync(join(run.runDir, 'report.html'), 'utf8');
  assert.match(html, /person22_boxing_d2#0: observed, mask, model/);
  assert.doesNotMatch(html, /person1[12]_/, 'no training clip is held out');
  assert.deepEqual(readdirSync(join(run.runDir, 'checkpoints')).sort(), ['step-2', 'step-3']);

  // One more run of 5 iterations resumed from step 3 takes clips 7–10 of the stream.
  const resumed = await runGraph(kthRaindrops, { steps: 5 }, { ...quiet, runsDir: join(scratch, 'runs'), resume: true });
  assert.equal(resumed.runDir, run.runDir);
  assert.deepEqual(records(run.runDir, 'step').map((s) => s['position']), [2, 4, 6, 8, 10]);
});

test('without --source, KTH comes from its official site through the cache (here already there: no network); FaceForensics++ says where to get it', async () => {
  // The cache as a first download from the official URL leaves it: the seven files in a folder named by the URL.
  const cache = join(scratch, 'cache');
  const folder = join(cache, 'kth', createHash('sha256').update('http://www.csc.kth.se/cvap/actions/').digest('hex').slice(0, 12));
  mkdirSync(folder, { recursive: true });
  for (const file of ['boxing.zip', 'walking.zip', '00sequences.txt']) copyFileSync(join(data, file), join(folder, file));
  for (const action of ['handclapping', 'handwaving', 'jogging', 'running']) writeFileSync(join(folder, `${action}.zip`), zipSync({}));
  const err: string[] = [];
  const code = await main(['run', 'kth-raindrops', '--cache', cache, '--preset', 'cpu', '--dataset-option', 'split-by=person', '--steps', '1', '--batch', '2', '--frames', '4', '--size', '16', '--base', '2', '--eval-clips', '1', '--threads', '1', '--backend', 'wasm', '--out', join(scratch, 'official')], { out: () => {}, err: (l) => err.push(l) });
  assert.equal(code, 0, err.join('\n'));
  const missing: string[] = [];
  assert.equal(await main(['run', 'faceforensics-raindrops', '--out', join(scratch, 'none')], { out: () => {}, err: (l) => missing.push(l) }), 2);
  assert.match(missing.join('\n'), /^st-inpaint: dataset "faceforensics" needs --source: the folder original_sequences\/youtube\/c23\/videos .*access form/);
});

test("paper-table sets the finished runs' final evaluations beside the paper's numbers, SST in °C; an unfinished run is left out by name", async () => {
  const runs = join(scratch, 'runs');
  // A crashed copy of the SST run: its metrics stop after the first step.
  const [sstRun] = readdirSync(join(runs, 'sst-clouds')).map((d) => join(runs, 'sst-clouds', d));
  const crashed = join(runs, 'sst-clouds', 'crashed');
  mkdirSync(crashed);
  const lines = readFileSync(join(sstRun!, 'metrics.jsonl'), 'utf8').split('\n');
  writeFileSync(join(crashed, 'metrics.jsonl'), lines.slice(0, lines.findIndex((l) => l.includes('"type":"step"')) + 1).join('\n'));
  const out: string[] = [];
  const err: string[] = [];
  const html = join(scratch, 'paper.html');
  assert.equal(await main(['paper-table', runs, '--html', html], { out: (l) => out.push(l), err: (l) => err.push(l) }), 0, err.join('\n'));
  const markdown = out.join('\n');
  const last = records(sstRun!, 'evaluation').at(-1) as { rows: Array<{ method: string; unit?: string; values: Record<string, { mean: number }> }> };
  const model = last.rows.find((r) => r.method === 'model')!;
  assert.equal(model.unit, '°C');
  const celsius = model.values['mae-physical']!.mean;
  assert.ok(celsius > 0);
  // The SST row: one run, our MAE in °C beside the paper's 0.0739, and the difference.
  assert.match(markdown, new RegExp(`^\\| SST, clouds at LWP 70 \\(ours\\) \\| 1 \\| – \\| 8\\.01 \\| – \\| – \\| 40\\.76 \\| – \\| ${celsius.toFixed(4)} \\| 0\\.0739 \\| ${celsius >= 0.0739 ? '\\+' : '-'}${Math.abs(celsius - 0.0739).toFixed(4)} \\|$`, 'm'));
  const kth = (records(join(runs, 'kth-raindrops', readdirSync(join(runs, 'kth-raindrops'))[0]!), 'evaluation').at(-1) as typeof last).rows[0]!.values['mae']!.mean;
  assert.match(markdown, new RegExp(`^\\| KTH, raindrops \\| 1 \\|.*\\| ${kth.toFixed(4)} \\| 0\\.0380 \\|`, 'm'));
  assert.match(markdown, /^\| BAIR, raindrops \| 0 \|/m);
  assert.ok(err.some((l) => l.startsWith(`${crashed}: sst-clouds has not finished (last step 1); left out`)), err.join('\n'));
  assert.match(readFileSync(html, 'utf8'), /<h2>Supervised upper bounds<\/h2>/);
  // Nothing to tabulate is a usage error naming the folder.
  const none: string[] = [];
  assert.equal(await main(['paper-table', crashed], { out: () => {}, err: (l) => none.push(l) }), 2);
  assert.match(none.join('\n'), /no finished run of the paper's experiments under .*crashed/);
});

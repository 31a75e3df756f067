/**
 * The demo graph end to end (synthetic → raindrops → Arrow batches → GAN training), at a tiny
 * size: step records, checkpoints on disk, and a resumed run (a second `runGraph` with `resume`)
 * that continues the data and the losses of an uninterrupted run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import demo from '../../graphs/demo.ts';
import { runGraph } from '../../pipeline/runner.ts';
import { writeGraphModel } from '../fixtures/graph-model.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-demo-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const tiny = { batch: 2, clips: 40, frames: 4, size: 16, base: 2, backend: 'wasm', 'checkpoint-every': 2, 'eval-every': 2, 'eval-clips': 3 };

function records(runDir: string, type: string): Array<Record<string, number>> {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number> & { type: string })
    .filter((e) => e.type === type);
}
const steps = (runDir: string): Array<Record<string, number>> => records(runDir, 'step');
const evaluatedAt = (runDir: string): number[] => records(runDir, 'evaluation').map((e) => e['step']!);

test('demo trains, checkpoints, and a resumed run repeats the uninterrupted one', async () => {
  const quiet = { progress: false as const, handleSignals: false, log: () => {} };
  const straight = await runGraph(demo, { ...tiny, steps: 5 }, { ...quiet, runsDir: join(scratch, 'a') });
  const expected = steps(straight.runDir);
  assert.deepEqual(expected.map((r) => r['step']), [1, 2, 3, 4, 5]);
  assert.deepEqual(expected.map((r) => r['position']), [2, 4, 6, 8, 10]);
  for (const r of expected) assert.ok(Number.isFinite(r['waitMs']) && r['waitMs']! >= 0, 'each step says how long it waited for its batch');
  // Held-out evaluation every 2 steps and at the end, the model beside the three baselines.
  assert.deepEqual(evaluatedAt(straight.runDir), [2, 4, 5]);
  const rows = (records(straight.runDir, 'evaluation')[0] as unknown as { rows: Array<{ method: string; clips: number; values: { mae: { mean: number } } }> }).rows;
  assert.deepEqual(rows.map((r) => r.method), ['model', 'dineof', 'interpolation', 'mean-fill']);
  for (const r of rows) assert.ok(r.clips > 0 && r.values.mae.mean > 0 && r.values.mae.mean < 1);
  const html = readFileSync(join(straight.runDir, 'report.html'), 'utf8');
  assert.match(html, /<div id="metrics"><table>/);
  assert.equal(html.match(/<img /g)?.length, Math.min(4, rows[0]!.clips));
  // The demo's departures from the paper are stated at the top of its report.
  assert.match(html, /Note:<\/strong> this run adds a self-supervised fill term that is not in the paper \(weight 10\)/);
  assert.match(html, /Note:<\/strong> G's fill is offset by each hidden pixel's temporal interpolation from its visible frames \(not in the paper\)/);
  assert.match(html, /Note:<\/strong> G sees the observation with its hidden pixels interpolated in time instead of set to the fill value \(not in the paper/);
  assert.match(html, /Note:<\/strong> held-out clips are filled by a moving average of G's weights \(β = 0.95; not in the paper/);

  const interrupted = await runGraph(demo, { ...tiny, steps: 3 }, { ...quiet, runsDir: join(scratch, 'b') });
  assert.deepEqual(readdirSync(join(interrupted.runDir, 'checkpoints')).sort(), ['step-2', 'step-3']);
  const resumed = await runGraph(demo, { steps: 5 }, { ...quiet, runsDir: join(scratch, 'b'), resume: true });
  assert.equal(resumed.runDir, interrupted.runDir);
  const all = steps(resumed.runDir);
  assert.deepEqual(all.map((r) => r['step']), [1, 2, 3, 4, 5]);
  for (const [i, field] of [3, 4].flatMap((i) => ['lossG', 'lossD', 'gradNormG', 'position'].map((f) => [i, f] as const))) {
    assert.ok(Math.abs(all[i]![field]! - expected[i]![field]!) <= 1e-5 * Math.max(1, Math.abs(expected[i]![field]!)), `step ${i + 1} ${field}: resumed ${all[i]![field]}, uninterrupted ${expected[i]![field]}`);
  }
  assert.deepEqual(readdirSync(join(resumed.runDir, 'checkpoints')).sort(), ['step-3', 'step-4', 'step-5']);
  // The report of the resumed run covers both sessions (the first one ended, and scored, at step 3).
  assert.deepEqual(evaluatedAt(resumed.runDir), [2, 3, 4, 5]);
  assert.match(readFileSync(join(resumed.runDir, 'report.html'), 'utf8'), / 5 iterations in /);
});

test('with --fid-model and --fvd-model the final evaluation scores every method by FID and FVD; without them the report says so', async () => {
  writeGraphModel(join(scratch, 'inception'), { inputShape: [-1, 299, 299, 3], axes: [1, 2], out: 2048 });
  writeGraphModel(join(scratch, 'i3d'), { inputShape: [-1, -1, 224, 224, 3], axes: [1, 2, 3], out: 400 });
  const quiet = { progress: false as const, handleSignals: false, log: () => {} };
  const run = await runGraph(demo, { ...tiny, clips: 120, steps: 2, 'eval-every': 0, 'fid-model': join(scratch, 'inception'), 'fvd-model': join(scratch, 'i3d') }, { ...quiet, runsDir: join(scratch, 'fid') });
  const [evaluation] = records(run.runDir, 'evaluation') as unknown as Array<{ sets: Record<string, { fid: number; fvd: number }> }>;
  assert.deepEqual(Object.keys(evaluation!.sets), ['model', 'dineof', 'interpolation', 'mean-fill']);
  for (const v of Object.values(evaluation!.sets)) assert.ok(v.fid >= -1e-9 && Number.isFinite(v.fid) && v.fvd >= -1e-9 && Number.isFinite(v.fvd), JSON.stringify(v));
  assert.match(readFileSync(join(run.runDir, 'report.html'), 'utf8'), /<table id="distances">.*FID ↓.*FVD ↓/s);
  // The paper's model exactly (no fill term, no offset, G evaluated as trained): the report has no departure to note.
  const plain = await runGraph(demo, { ...tiny, steps: 1, 'eval-every': 0, 'self-supervised': 0, 'interpolation-offset': false, 'g-average': 0 }, { ...quiet, runsDir: join(scratch, 'nofid') });
  const plainHtml = readFileSync(join(plain.runDir, 'report.html'), 'utf8');
  assert.match(plainHtml, /Not computed: FID \(--fid-model: a converted Inception-v3\); FVD \(--fvd-model: a converted I3D\)/);
  assert.doesNotMatch(plainHtml, /Note:/);
});

test('--resume without an earlier run is a usage error naming the folder', async () => {
  await assert.rejects(runGraph(demo, tiny, { progress: false, handleSignals: false, runsDir: join(scratch, 'none'), resume: true }), /--resume: no earlier run of "demo" under .*none/);
});

test('cancelling a run (SIGINT, abort) checkpoints the last finished step; a damaged checkpoint is refused by name', async () => {
  const controller = new AbortController();
  const runsDir = join(scratch, 'cancel');
  let runDir = '';
  // Aborted as soon as step 2's checkpoint is written, while the run goes on to step 3.
  const log = (line: string): void => {
    if (/checkpoint .*step-2$/.test(line)) controller.abort('test abort');
  };
  await assert.rejects(
    runGraph(demo, { ...tiny, steps: 500, 'checkpoint-every': 2, 'eval-every': 0 }, { progress: false, handleSignals: false, log, runsDir, signal: controller.signal, runId: 'r' }),
    (err: Error) => err.name === 'CancelledError',
  );
  runDir = join(runsDir, 'demo', 'r');
  const saved = readdirSync(join(runDir, 'checkpoints')).sort();
  // The teardown checkpoints the last iteration that finished (the one in flight at the abort
  // finishes first), and that is the newest checkpoint.
  const done = Math.max(...saved.map((s) => Number(s.slice('step-'.length))));
  assert.ok(saved.includes('step-2') && done >= 2 && done <= 3, saved.join(', '));
  assert.ok(steps(runDir).length <= done);

  const { loadCheckpoint } = await import('../../pipeline/checkpoint.ts');
  const { appendFileSync } = await import('node:fs');
  appendFileSync(join(runDir, 'checkpoints', `step-${done}`, 'tensors.bin'), 'x');
  assert.throws(() => loadCheckpoint(join(runDir, 'checkpoints', `step-${done}`)), /checkpoint ".*step-\d+" is damaged: tensors.bin does not match its SHA-256/);
});

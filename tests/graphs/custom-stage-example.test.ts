/**
 * The custom-stage example: its stage and baseline on hand-worked inputs, and the graph end to end
 * (the extra stage in the chain, the extra baseline in the evaluation records), also run directly
 * as a script.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { lastValueFrom, of, toArray } from 'rxjs';
import graph, { mirror, temporalMedian } from '../../graphs/custom-stage-example.ts';
import { runGraph } from '../../pipeline/runner.ts';
import { Random } from '../../stages/random.ts';
import { leased } from '../pipeline/helpers.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-example-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('mirror flips exactly the clips its seeded coin picks, left to right, every channel', async () => {
  const width = 3;
  const clips = Array.from({ length: 8 }, (_, k) => ({ id: `c${k}`, frames: Uint8Array.from({ length: 2 * 2 * width * 2 }, (_, i) => (i * 7 + k) & 255) }));
  const out = await lastValueFrom(leased(of(...clips)).pipe(mirror(5, width, 2), unwrap(), toArray()));
  let flipped = 0;
  out.forEach((clip, k) => {
    const flip = Random.fromKey('mirror', 5, `c${k}`).uniform(0, 1) >= 0.5;
    const src = clips[k]!.frames;
    for (let i = 0; i < src.length; i++) {
      const [c, x, r] = [i % 2, Math.floor(i / 2) % width, Math.floor(i / (2 * width))];
      assert.equal(clip.frames[i], flip ? src[(r * width + (width - 1 - x)) * 2 + c] : src[i]);
    }
    if (flip) flipped++;
  });
  assert.ok(flipped > 0 && flipped < 8);
});

test('temporal median fills a hidden value with the median of its pixel over the visible frames', () => {
  const g = { frames: 4, height: 1, width: 2, channels: 1 };
  // Pixel 0 over time: 0.1, hidden, 0.9, 0.3 → median 0.3. Pixel 1 never visible → mean of visible (0.1, 0.9, 0.3).
  const observed = Float32Array.of(0.1, 1, 1, 1, 0.9, 1, 0.3, 1);
  const mask = Uint8Array.of(1, 0, 0, 0, 1, 0, 1, 0);
  const out = temporalMedian(observed, mask, g);
  assert.ok(Math.abs(out[2]! - 0.3) < 1e-6);
  for (const i of [1, 3, 5, 7]) assert.ok(Math.abs(out[i]! - (0.1 + 0.9 + 0.3) / 3) < 1e-6);
  for (const i of [0, 4, 6]) assert.equal(out[i], observed[i]);
});

test('the example graph runs the extra stage and scores the extra baseline, through runGraph and as a script', async () => {
  const tiny = { steps: 2, batch: 2, clips: 40, frames: 4, size: 16, base: 2, backend: 'wasm', 'eval-every': 0, 'eval-clips': 2 };
  const run = await runGraph(graph, tiny, { progress: false, handleSignals: false, log: () => {}, runsDir: join(scratch, 'a') });
  const lines = readFileSync(join(run.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const evaluation = lines.find((l) => l['type'] === 'evaluation') as { rows: Array<{ method: string }> } | undefined;
  assert.deepEqual(evaluation?.rows.map((r) => r.method), ['model', 'dineof', 'interpolation', 'mean-fill', 'temporal-median']);
  const telemetry = JSON.stringify(lines.filter((l) => l['type'] === 'telemetry'));
  assert.match(telemetry, /"mirror"/);

  const args = Object.entries({ ...tiny, out: join(scratch, 'b') }).flatMap(([k, v]) => [`--${k}`, String(v)]);
  execFileSync('npx', ['tsx', 'graphs/custom-stage-example.ts', ...args], { stdio: 'ignore', timeout: 120_000 });
  assert.equal(readdirSync(join(scratch, 'b', 'custom-stage-example')).length, 1);
});

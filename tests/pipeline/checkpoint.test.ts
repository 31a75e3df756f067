/**
 * The checkpoint store's promises: no non-finite checkpoint is ever written, and a resume passes
 * over a damaged newest checkpoint to the newest intact one, saying so.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import { selectBackend } from '../../pipeline/backend.ts';
import { latestIntactCheckpoint, listCheckpoints, loadCheckpoint, saveCheckpoint, type CheckpointContent } from '../../pipeline/checkpoint.ts';
import { encodeFrameBatch, type FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { checkpoints } from '../../stages/gan/checkpoints.ts';
import { trainGan } from '../../stages/gan/train.ts';
import { OneWeightTrainer } from '../fixtures/trainer.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-checkpoint-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const content = (step: number, values: number[]): CheckpointContent<{ n: number }> => ({ step, state: { n: step }, arrays: new Map([['w', { shape: [values.length], values: Float32Array.from(values) }]]) });

/** Flips one byte of a checkpoint's data: its digest no longer matches. */
function damage(path: string): void {
  const file = join(path, 'tensors.bin');
  const bytes = readFileSync(file);
  bytes[0] = bytes[0]! ^ 0xff;
  writeFileSync(file, bytes);
}

test('a checkpoint with a NaN or an infinity is not written, and the ones before it stay', () => {
  const dir = join(scratch, 'finite');
  saveCheckpoint(dir, content(1, [1, 2, 3]));
  assert.throws(() => saveCheckpoint(dir, content(2, [1, NaN, Infinity])), /checkpoint step-2 not written: array "w" holds 2 non-finite values/);
  assert.deepEqual(listCheckpoints(dir).map((c) => c.step), [1]);
  // No temporary folder is left behind either.
  assert.deepEqual(readdirSync(dir), ['step-1']);
});

test('the newest intact checkpoint passes over damaged ones and names each', () => {
  const dir = join(scratch, 'intact');
  for (const step of [1, 2, 3]) saveCheckpoint(dir, content(step, [step]));
  damage(join(dir, 'step-3'));
  writeFileSync(join(dir, 'step-2', 'checkpoint.json'), '{ torn');
  const skipped: string[] = [];
  assert.equal(latestIntactCheckpoint(dir, (path, reason) => skipped.push(`${path}: ${reason}`))?.step, 1);
  assert.equal(skipped.length, 2);
  assert.match(skipped[0]!, /step-3: checkpoint ".*step-3" is damaged: tensors.bin does not match its SHA-256/);
  assert.match(skipped[1]!, /step-2: checkpoint ".*step-2" is unreadable/);
});

/** G's loss is the weight: a resumed run's records show which checkpoint it continued. */
const counting = (): OneWeightTrainer => new OneWeightTrainer((w) => ({ lossG: w, lossD: 0 }));

test('--resume on a damaged newest checkpoint continues from the newest intact one and says so', async () => {
  await selectBackend('cpu');
  const runDir = join(scratch, 'resume');
  const dir = join(runDir, 'checkpoints');
  const spec: FrameBatchSpec = { shape: { frames: 1, height: 2, width: 2, channels: 1 }, pixelType: 'uint8', range: [0, 255] };
  const batches = (n: number) => source('batches', function* () {
    for (let k = 0; k < n; k++) yield encodeFrameBatch(spec, [{ id: `c${k}`, frames: new Uint8Array(4) }]);
  });
  await lastValueFrom(batches(3).pipe(trainGan({ createTrainer: () => counting(), checkpoints: { dir, every: 1, keep: 3 } }), unwrap(), toArray()));
  assert.deepEqual(listCheckpoints(dir).map((c) => c.step), [1, 2, 3]);
  damage(join(dir, 'step-3'));
  const log: string[] = [];
  const plan = checkpoints({ runDir, resume: true, log: (l) => log.push(l) }, { every: 1 });
  const records = await lastValueFrom(batches(2).pipe(trainGan({ createTrainer: () => counting(), checkpoints: plan, log: (l) => log.push(l) }), unwrap(), toArray()));
  assert.match(log[0]!, /step-3" is damaged: tensors.bin does not match its SHA-256; resuming from an earlier checkpoint/);
  assert.match(log[1]!, /resumed from .*step-2 \(step 2, 2 clips seen\)/);
  // Step 3 again, from step 2's weight: the damaged checkpoint is replaced by a good one.
  assert.deepEqual(records.map((r) => [r.step, r.lossG]), [[3, 3], [4, 4]]);
  assert.equal(loadCheckpoint(join(dir, 'step-3')).step, 3);
});

/**
 * How a training run ends: the record of the last iteration says so (when the data ends, so that
 * the final evaluation runs on the final weights), the authors' stopping rule ends training after
 * the first iteration whose loss is under its limit (checkpointed, nothing further read), and an
 * epoch bound ends the data after that many passes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import { selectBackend } from '../../pipeline/backend.ts';
import { listCheckpoints } from '../../pipeline/checkpoint.ts';
import { encodeFrameBatch, type FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { pull } from '../../pipeline/operators/pull.ts';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { settleTeardowns } from '../../pipeline/teardown.ts';
import { shuffledEpochs } from '../../stages/batch/shuffle.ts';
import { trainGan } from '../../stages/gan/train.ts';
import { OneWeightTrainer } from '../fixtures/trainer.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-train-end-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const spec: FrameBatchSpec = { shape: { frames: 1, height: 2, width: 2, channels: 1 }, pixelType: 'uint8', range: [0, 255] };

/** D's loss halves every step (1/2, 1/4, …): what is under test is the stage. */
const halving = (): OneWeightTrainer => new OneWeightTrainer((w) => ({ lossG: 1, lossD: 0.5 ** w }));

/** `n` one-clip batches, counting how many were read. */
function batches(n: number, read: { count: number }) {
  return source('batches', function* () {
    for (let k = 0; k < n; k++) {
      read.count += 1;
      yield encodeFrameBatch(spec, [{ id: `c${k}`, frames: new Uint8Array(4) }]);
    }
  });
}

test('only the record of the iteration on the last batch is marked last', async () => {
  await selectBackend('cpu');
  const read = { count: 0 };
  const records = await lastValueFrom(batches(4, read).pipe(trainGan({ createTrainer: () => halving(), checkpoints: { dir: join(scratch, 'last'), every: 0, keep: 2 } }), unwrap(), toArray()));
  assert.deepEqual(records.map((r) => [r.step, r.last]), [[1, false], [2, false], [3, false], [4, true]]);
  // The end of the run is checkpointed.
  await settleTeardowns();
  assert.deepEqual(listCheckpoints(join(scratch, 'last')).map((c) => c.step), [4]);
});

test("the stopping rule ends training after the first iteration under its limit: marked last, checkpointed, and the data stops being read", async () => {
  await selectBackend('cpu');
  const read = { count: 0 };
  const log: string[] = [];
  const dir = join(scratch, 'stop');
  // D's loss: 0.5, 0.25, 0.125 (< 0.2): three iterations of a hundred batches.
  const records = await lastValueFrom(batches(100, read).pipe(trainGan({ createTrainer: () => halving(), checkpoints: { dir, every: 0, keep: 2 }, stopBelow: 0.2, log: (l) => log.push(l) }), unwrap(), toArray()));
  assert.deepEqual(records.map((r) => [r.step, r.last]), [[1, false], [2, false], [3, true]]);
  await settleTeardowns();
  assert.deepEqual(listCheckpoints(dir).map((c) => c.step), [3]);
  assert.ok(log.some((l) => /stopping at step 3: the discriminators' loss 1\.25e-1 is under 0\.2/.test(l)), log.join('\n'));
  assert.ok(read.count < 10, `${read.count} batches read`);
});

test('an epoch bound ends the shuffled data after that many passes, each a permutation of the split', async () => {
  const items = source('items', function* () {
    for (let k = 0; k < 10; k++) yield k;
  });
  const out: number[] = [];
  for await (const item of pull(shuffledEpochs(items, { buffer: 4, seed: 3, start: 0, count: Infinity, epochs: 2 }))) out.push(item);
  assert.equal(out.length, 20);
  for (const pass of [out.slice(0, 10), out.slice(10)]) assert.deepEqual([...pass].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // A resumed run starting at position 13 sees the same last 7 items.
  const resumed: number[] = [];
  for await (const item of pull(shuffledEpochs(items, { buffer: 4, seed: 3, start: 13, count: Infinity, epochs: 2 }))) resumed.push(item);
  assert.deepEqual(resumed, out.slice(13));
});

/**
 * Data-parallel training over two real threads: the replicas hold bitwise the same weights,
 * optimiser moments and spectral-norm vectors after several steps (only the batch-norm running
 * statistics, per replica by design, may differ); a run resumed from a checkpoint repeats the
 * uninterrupted one; odd batches split unevenly; wrong batches fail in one line; no tensor leaks.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../pipeline/backend.ts';
import type { GanConfig } from '../../stages/gan/networks.ts';
import { DataParallelTrainer } from '../../stages/gan/parallel.ts';
import type { StepRecord } from '../../stages/gan/trainer.ts';
import { chooseOcclusion } from '../../stages/occlusion/index.ts';
import { MaskSampler, fillValue } from '../../stages/occlusion/process.ts';
import { Random } from '../../stages/random.ts';

const config: GanConfig = { base: 2, channels: 1, frames: 4, height: 16, width: 16, extraBlock: false };
const shape = { frames: config.frames, height: config.height, width: config.width };

before(async () => {
  await selectBackend('wasm');
});

async function start(): Promise<DataParallelTrainer> {
  const { process, options } = chooseOcclusion('raindrops', {});
  const drawer = await process.prepare(options as never, shape);
  return DataParallelTrainer.start(
    { config, seed: 3, fill: fillValue(process, [-1, 1]), timeDependent: process.timeDependent, sampler: new MaskSampler(drawer, shape, Random.fromKey(3, 'fresh')), learningRate: 1e-3 },
    'wasm',
  );
}

/** Observed batch k: random clips under random masks, a function of k. */
function batchAt(k: number, size: number): { y: tf.Tensor5D; m: tf.Tensor5D } {
  return tf.tidy(() => {
    const m = tf.cast(tf.greater(tf.randomUniform([size, config.frames, config.height, config.width, 1], 0, 1, 'float32', 100 + k), 0.3), 'float32') as tf.Tensor5D;
    const x = tf.randomUniform([size, config.frames, config.height, config.width, 1], -1, 1, 'float32', 200 + k);
    return { y: tf.add(tf.mul(x, m), tf.sub(1, m)) as tf.Tensor5D, m };
  });
}

async function steps(trainer: DataParallelTrainer, from: number, count: number, size = 4): Promise<StepRecord[]> {
  const out: StepRecord[] = [];
  for (let k = from; k < from + count; k++) {
    const { y, m } = batchAt(k, size);
    try {
      out.push(await trainer.trainStep(y, m));
    } finally {
      tf.dispose([y, m]);
    }
  }
  return out;
}

const trainers: DataParallelTrainer[] = [];
after(() => trainers.forEach((t) => t.dispose()));

test('the two replicas hold bitwise the same weights, moments and spectral-norm vectors after training', async () => {
  const t = await start();
  trainers.push(t);
  const records = await steps(t, 0, 3);
  assert.deepEqual(records.map((r) => r.step), [1, 2, 3]);
  assert.deepEqual(records.map((r) => r.position), [4, 8, 12]);
  for (const r of records) assert.ok(Number.isFinite(r.lossG) && Number.isFinite(r.lossD));
  const [mine, theirs] = [await t.snapshot(), await t.replicaSnapshot()];
  let compared = 0;
  for (const [name, a] of mine.arrays) {
    if (name.includes('running-')) continue; // batch-norm running statistics are per replica
    const b = theirs.arrays.get(name);
    assert.ok(b, `replica lacks ${name}`);
    assert.deepEqual(Buffer.from(b.values.buffer, b.values.byteOffset, b.values.byteLength), Buffer.from(a.values.buffer, a.values.byteOffset, a.values.byteLength), `${name} differs between replicas`);
    compared++;
  }
  assert.ok(compared > 50, `${compared} arrays compared`);
});

test('a two-thread run resumed from a checkpoint repeats the uninterrupted one', async () => {
  const straight = await start();
  trainers.push(straight);
  const expected = await steps(straight, 0, 4);
  const first = await start();
  trainers.push(first);
  await steps(first, 0, 2);
  const snapshot = await first.snapshot();
  const resumed = await start();
  trainers.push(resumed);
  await resumed.restore(snapshot);
  const got = await steps(resumed, 2, 2);
  for (let i = 0; i < 2; i++) {
    for (const field of ['lossG', 'lossD', 'gradNormG', 'gradNormD'] as const) {
      const [a, b] = [got[i]![field], expected[i + 2]![field]];
      assert.ok(Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b)), `step ${i + 3} ${field}: resumed ${a}, uninterrupted ${b}`);
    }
  }
});

test('odd batches split unevenly; a batch of one is refused in one line; no tensors leak', async () => {
  const t = await start();
  trainers.push(t);
  const [r] = await steps(t, 0, 1, 3);
  assert.equal(r!.position, 3);
  const { y, m } = batchAt(9, 1);
  await assert.rejects(t.trainStep(y, m), /two training threads need batches of at least 2 clips, got 1/);
  tf.dispose([y, m]);
  await steps(t, 1, 1);
  const count = tf.memory().numTensors;
  await steps(t, 2, 3);
  assert.equal(tf.memory().numTensors, count);
});

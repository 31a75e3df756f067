/**
 * The paper's other models: the recurrent generator is causal (changing frame t changes no output
 * before t) and the static one fills each frame on its own, with no D_s; parameter counts equal
 * the networks as built; the paired model's L1 term is |x̂ − x| and falls as G trains; the
 * unpaired model's clean clips come from another stream, the i-th observation meeting the i-th
 * clean clip; a supervised frame batch holds the observations, then their clean clips.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { lastValueFrom, map, toArray } from 'rxjs';
import { selectBackend } from '../../pipeline/backend.ts';
import { decodeFrameBatch, type FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { frameBatches } from '../../stages/batch/frame-batches.ts';
import { unpairedClean } from '../../stages/batch/unpaired.ts';
import { Generator, RecurrentGenerator, makeGenerator, parameterCounts, type GanConfig } from '../../stages/gan/networks.ts';
import { GanTrainer, type TrainerOptions } from '../../stages/gan/trainer.ts';
import type { ObservedClip } from '../../stages/occlusion/occlude.ts';
import { chooseOcclusion } from '../../stages/occlusion/index.ts';
import { MaskSampler, fillValue } from '../../stages/occlusion/process.ts';
import { Random } from '../../stages/random.ts';

const TINY: GanConfig = { base: 2, channels: 1, frames: 5, height: 8, width: 8, extraBlock: false };

/**
 * Outputs of φ in inference mode for `y` and for `y` with frame `t` changed, frame by frame: which
 * frames differ. The running batch-norm statistics are first moved to the data's (an untrained
 * network's unit statistics saturate tanh, which would hide a change).
 */
function framesChanged(g: Generator | RecurrentGenerator, t: number): boolean[] {
  return tf.tidy(() => {
    const [T, H, W] = [TINY.frames, TINY.height, TINY.width];
    const y = tf.randomUniform([1, T, H, W, 1], -1, 1, 'float32', 7) as tf.Tensor5D;
    for (let k = 0; k < 25; k++) tf.tidy(() => void g.apply(y, { training: true }));
    const bump = tf.tensor5d(Float32Array.from({ length: T * H * W }, (_, i) => (Math.floor(i / (H * W)) === t ? 0.5 : 0)), [1, T, H, W, 1]);
    const a = g.apply(y, { training: false }).arraySync()[0]!;
    const b = g.apply(tf.add(y, bump) as tf.Tensor5D, { training: false }).arraySync()[0]!;
    return a.map((frame, k) => frame.flat(2).some((v, i) => v !== b[k]!.flat(2)[i]));
  });
}

test('the recurrent generator is causal: changing frame t changes no output before t, and changes t and after', async () => {
  await selectBackend('wasm');
  const g = new RecurrentGenerator({ ...TINY, variant: 'recurrent' }, 3);
  assert.deepEqual(framesChanged(g, 2), [false, false, true, true, true]);
  assert.deepEqual(framesChanged(g, 0), [true, true, true, true, true]);
  // The 3D generator is not: frame 2 reaches frames 1 and 3 through its temporal kernels.
  const paper = new Generator(TINY, 3);
  assert.deepEqual(framesChanged(paper, 2).slice(0, 2), [true, true]);
  g.dispose();
  paper.dispose();
});

test('the static generator fills each frame from that frame alone', async () => {
  await selectBackend('wasm');
  const g = makeGenerator({ ...TINY, variant: 'static' }, 3);
  assert.deepEqual(framesChanged(g, 2), [false, false, true, false, false]);
  g.dispose();
});

test("parameter counts of the ablations' networks equal the networks as built; the static model has no D_s", async () => {
  await selectBackend('cpu');
  for (const variant of ['static', 'recurrent'] as const) {
    for (const base of [2, 6]) {
      const config: GanConfig = { ...TINY, base, channels: 1, frames: 24, height: 64, width: 64, variant };
      const g = makeGenerator(config, 1);
      const counts = parameterCounts(config);
      assert.equal(g.parameterCount, counts.generator, `${variant} at C = ${base}`);
      g.dispose();
      if (variant === 'static') assert.equal(counts.sequenceDiscriminator, 0);
    }
  }
  // The paper's table's generator at one channel (C = 32): 28 957 412, the 3-channel count 28 960 938
  // less 1 796 in the first block (BN 2·3 → 2·1, conv 27·3·32 → 27·1·32, shortcut 3·32 → 1·32) and
  // 1 730 in the output conv (27·32·3 + 3 → 27·32·1 + 1).
  assert.equal(parameterCounts({ base: 32, channels: 1, frames: 24, height: 64, width: 64, extraBlock: true }).generator, 28_957_412);
});

async function trainer(config: GanConfig, extra: Partial<TrainerOptions> = {}): Promise<GanTrainer> {
  const { process, options } = chooseOcclusion('raindrops', {});
  const shape = { frames: config.frames, height: config.height, width: config.width };
  const drawer = await process.prepare(options as never, shape);
  return new GanTrainer({ config, seed: 4, fill: fillValue(process, [-1, 1]), timeDependent: true, sampler: new MaskSampler(drawer, shape, Random.fromKey(4, 'fresh')), learningRate: 1e-3, ...extra });
}

test('the static trainer has no D_s: none in its checkpoint, scores 0; it trains without leaking tensors', async () => {
  await selectBackend('wasm');
  const t = await trainer({ ...TINY, variant: 'static' });
  assert.equal(t.sequenceDiscriminator, undefined);
  const y = tf.randomUniform([2, TINY.frames, 8, 8, 1], -1, 1, 'float32', 1) as tf.Tensor5D;
  const m = tf.ones([2, TINY.frames, 8, 8, 1]) as tf.Tensor5D;
  const first = await t.trainStep(y, m);
  assert.equal(first.dsReal, 0);
  assert.ok(Number.isFinite(first.lossD) && Number.isFinite(first.lossG));
  const before = tf.memory().numTensors;
  for (let k = 0; k < 3; k++) await t.trainStep(y, m);
  assert.equal(tf.memory().numTensors, before);
  const names = [...(await t.snapshot()).arrays.keys()];
  assert.ok(names.some((n) => n.startsWith('frame-discriminator/')) && !names.some((n) => n.startsWith('sequence-discriminator/')));
  tf.dispose([y, m]);
  t.dispose();
});

test("the paired model's L1 term is mean |x̂ − x| over the clean clips, and falls as G trains; the unpaired model has none", async () => {
  await selectBackend('wasm');
  const [T, H, W] = [TINY.frames, 8, 8];
  const clean = tf.randomUniform([2, T, H, W, 1], -1, 1, 'float32', 2) as tf.Tensor5D;
  const m = tf.tensor5d(Float32Array.from({ length: 2 * T * H * W }, (_, i) => (i % 3 ? 1 : 0)), [2, T, H, W, 1]);
  const y = tf.add(tf.mul(clean, m), tf.sub(1, m)) as tf.Tensor5D;
  const batch = tf.concat([y, clean]) as tf.Tensor5D;
  const masks = tf.concat([m, tf.ones([2, T, H, W, 1])]) as tf.Tensor5D;
  const paired = await trainer(TINY, { supervision: 'paired', l1Weight: 10, discriminatorLearningRate: 0 });
  // Before the first update: x̂ from an identical untrained G after the step's power iteration, in training mode as the step computes it.
  const twin = await trainer(TINY, { supervision: 'paired' });
  twin.generator.powerIterate();
  const expected = tf.tidy(() => {
    const phi = twin.generator.apply(y, { training: true }, m);
    const xHat = tf.add(tf.mul(phi, tf.sub(1, m)), tf.mul(y, m));
    return tf.mean(tf.abs(tf.sub(xHat, clean))).dataSync()[0]!;
  });
  const first = await paired.trainStep(batch, masks);
  assert.ok(Math.abs(first.lossSelf - expected) < 1e-3 * Math.max(1, expected), `L1 ${first.lossSelf}, independently ${expected}`);
  assert.equal(first.position, 2, 'the observations are counted, not the clean clips');
  const later: number[] = [];
  for (let k = 0; k < 20; k++) later.push((await paired.trainStep(batch, masks)).lossSelf);
  assert.ok(later.slice(-3).reduce((a, v) => a + v) / 3 < 0.8 * first.lossSelf, `L1 ${first.lossSelf} → ${later.slice(-3).join(', ')}`);
  await assert.rejects(async () => paired.trainStep(tf.slice(batch, 0, 3) as tf.Tensor5D, tf.slice(masks, 0, 3) as tf.Tensor5D), /a supervised batch holds observed clips then as many clean ones; got 3/);
  paired.dispose();
  twin.dispose();
  const unpaired = await trainer(TINY, { supervision: 'unpaired' });
  assert.equal((await unpaired.trainStep(batch, masks)).lossSelf, 0);
  unpaired.dispose();
  tf.dispose([clean, m, y, batch, masks]);
});

test('a supervised frame batch holds the observations, then their clean clips, fully visible; unpaired clean clips come from the other stream in order', async () => {
  const spec: FrameBatchSpec = { shape: { frames: 1, height: 2, width: 2, channels: 1 }, pixelType: 'uint8', range: [0, 255] };
  const observed = (k: number): ObservedClip => ({ id: `o${k}`, frames: Uint8Array.of(k, 255, k, 255), mask: Uint8Array.of(1, 0, 1, 0), truth: Uint8Array.of(k, k, k, k), process: 'raindrops' });
  const clips = source('observed', function* () {
    for (let k = 0; k < 4; k++) yield observed(k);
  });
  const others = source('others', function* () {
    for (let k = 0; k < 10; k++) yield { id: `c${k}`, frames: Uint8Array.of(100 + k, 100 + k, 100 + k, 100 + k) };
  });
  // Each batch read before it is released (its buffers are then reused).
  const batches = await lastValueFrom(clips.pipe(frameBatches(spec, 2, { clean: true }), unwrap(), map((b) => decodeFrameBatch(b).clips.map((c) => ({ id: c.id, frames: [...c.frames], mask: [...c.mask!] }))), toArray()));
  const first = batches[0]!;
  assert.deepEqual(first.map((c) => c.id), ['o0', 'o1', 'o0+clean', 'o1+clean']);
  assert.deepEqual(first[3]!.frames, [1, 1, 1, 1]);
  assert.deepEqual(first[3]!.mask, [1, 1, 1, 1]);
  assert.deepEqual(first[1]!.mask, [1, 0, 1, 0]);
  const unpaired = await lastValueFrom(clips.pipe(unpairedClean(others), unwrap(), toArray()));
  assert.deepEqual(unpaired.map((c) => [c.id, c.truth[0]]), [['o0', 100], ['o1', 101], ['o2', 102], ['o3', 103]]);
});

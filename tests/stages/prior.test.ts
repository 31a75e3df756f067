/**
 * The interpolation offset's prior: the tensor temporal interpolation equals the interpolation
 * baseline (stages/eval/baselines.ts, written independently, per pixel in JS) on random clips and
 * masks, never-visible pixels included; an untrained generator with the offset fills close to it;
 * no tensor leaks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../pipeline/backend.ts';
import { temporalInterpolation as baseline } from '../../stages/eval/baselines.ts';
import { Generator } from '../../stages/gan/networks.ts';
import { temporalInterpolation } from '../../stages/gan/prior.ts';
import { Random } from '../../stages/random.ts';

const shape = { frames: 6, height: 5, width: 4, channels: 2 };

function clips(b: number, seed: number): { observed: Float32Array[]; masks: Uint8Array[] } {
  const random = Random.fromKey('prior', seed);
  const n = shape.frames * shape.height * shape.width;
  const masks = Array.from({ length: b }, () => Uint8Array.from({ length: n }, () => (random.uniform() < 0.45 ? 1 : 0)));
  // One pixel hidden in every frame of the first clip: it takes the clip's visible mean.
  for (let t = 0; t < shape.frames; t++) masks[0]![t * shape.height * shape.width + 3] = 0;
  const observed = masks.map((m) => Float32Array.from({ length: n * shape.channels }, (_, i) => (m[Math.floor(i / shape.channels)] ? random.uniform(-1, 1) : 1)));
  return { observed, masks };
}

test('the tensor interpolation equals the interpolation baseline, pixel for pixel, and leaks nothing', async () => {
  await selectBackend('wasm');
  const { observed, masks } = clips(3, 1);
  const { frames: T, height: H, width: W, channels: C } = shape;
  const y = tf.tensor5d(Float32Array.from(observed.flatMap((o) => [...o])), [3, T, H, W, C]);
  const m = tf.tensor5d(Float32Array.from(masks.flatMap((o) => [...o])), [3, T, H, W, 1]);
  const before = tf.memory().numTensors;
  const got = temporalInterpolation(y, m);
  assert.equal(tf.memory().numTensors, before + 1);
  const values = (await got.data()) as Float32Array;
  observed.forEach((o, k) => {
    const want = baseline(o, masks[k]!, shape);
    const n = o.length;
    for (let i = 0; i < n; i++) assert.ok(Math.abs(values[k * n + i]! - want[i]!) < 1e-5, `clip ${k} value ${i}: ${values[k * n + i]} for ${want[i]}`);
  });
  tf.dispose([y, m, got]);
});

test('an untrained generator with the interpolation offset fills close to the interpolation; without an offset, far from it', async () => {
  await selectBackend('wasm');
  const config = { base: 2, channels: 2, frames: 6, height: 6, width: 4, extraBlock: false };
  const random = Random.fromKey('prior-g');
  const n = config.frames * config.height * config.width;
  const m = tf.tensor5d(Float32Array.from({ length: 2 * n }, () => (random.uniform() < 0.6 ? 1 : 0)), [2, 6, 6, 4, 1]);
  const y = tf.tidy(() => tf.add(tf.mul(tf.randomUniform([2, 6, 6, 4, 2], -0.8, 0.8, 'float32', 3), m), tf.sub(1, m)) as tf.Tensor5D);
  // Batch statistics, as a training step computes them (an untrained network's running ones saturate tanh).
  const distance = (g: Generator): number =>
    tf.tidy(() => {
      const hidden = tf.sub(1, m);
      const gap = tf.mul(tf.abs(tf.sub(g.apply(y, { training: true, updateStatistics: false }, m), temporalInterpolation(y, m))), hidden);
      return tf.div(tf.sum(gap), tf.mul(tf.sum(hidden), 2)).dataSync()[0]!;
    });
  const withOffset = new Generator({ ...config, interpolationOffset: true }, 5);
  const plain = new Generator(config, 5);
  // The spectral norms settled first (their first estimates are far too small).
  for (let k = 0; k < 30; k++) (withOffset.powerIterate(), plain.powerIterate());
  const [near, far] = [distance(withOffset), distance(plain)];
  assert.ok(near < 0.1 && far > 2 * near, `mean |φ − interpolation| over the holes: ${near} with the offset, ${far} without`);
  withOffset.dispose();
  plain.dispose();
  tf.dispose([y, m]);
});

test('with the interpolation input, G does not see the hidden pixels\' values; with the observation as input, it does', async () => {
  await selectBackend('wasm');
  const config = { base: 2, channels: 1, frames: 6, height: 6, width: 4, extraBlock: false, interpolationOffset: true };
  const random = Random.fromKey('prior-input');
  const n = config.frames * config.height * config.width;
  const m = tf.tensor5d(Float32Array.from({ length: 2 * n }, () => (random.uniform() < 0.6 ? 1 : 0)), [2, 6, 6, 4, 1]);
  const x = tf.randomUniform([2, 6, 6, 4, 1], -0.8, 0.8, 'float32', 4);
  // The same observation with its hidden pixels at two fill values.
  const [a, b] = [1, -0.3].map((fill) => tf.tidy(() => tf.add(tf.mul(x, m), tf.mul(fill, tf.sub(1, m))) as tf.Tensor5D));
  const change = (g: Generator): number =>
    tf.tidy(() => {
      const mode = { training: true, updateStatistics: false };
      return tf.max(tf.abs(tf.sub(g.apply(a!, mode, m), g.apply(b!, mode, m)))).dataSync()[0]!;
    });
  const seeing = new Generator({ ...config, interpolationInput: true }, 5);
  const observing = new Generator(config, 5);
  const before = tf.memory().numTensors;
  const [unchanged, changed] = [change(seeing), change(observing)];
  assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
  assert.ok(unchanged < 1e-6, `interpolated input: outputs differ by up to ${unchanged}`);
  assert.ok(changed > 1e-3, `observation as input: outputs differ by only ${changed}`);
  seeing.dispose();
  observing.dispose();
  tf.dispose([x, m, a!, b!]);
});

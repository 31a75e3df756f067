/**
 * The inpainting GAN: parameter counts against the paper, layers against independent computations
 * (tf.conv3d, finite differences), wasm gradients against cpu gradients, exact resume from a
 * checkpoint on disk, no tensor leaks, and the NaN stop.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../pipeline/backend.ts';
import { listCheckpoints, loadCheckpoint, saveCheckpoint } from '../../pipeline/checkpoint.ts';
import { BatchNorm, FrameAttention, ParamStore, SNConv, conv3dBy2d } from '../../stages/gan/layers.ts';
import { FrameDiscriminator, Generator, PAPER_CONFIG, SequenceDiscriminator, parameterCounts, type GanConfig } from '../../stages/gan/networks.ts';
import { GanTrainer, NonFiniteLossError, type StepRecord, type TrainerOptions, type TrainerState } from '../../stages/gan/trainer.ts';
import { chooseOcclusion } from '../../stages/occlusion/index.ts';
import { MaskSampler, fillValue, type MaskDrawer } from '../../stages/occlusion/process.ts';
import { Random } from '../../stages/random.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-gan-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const TINY: GanConfig = { base: 2, channels: 1, frames: 4, height: 16, width: 16, extraBlock: false };

test('parameter counts at C = 32, 3 channels match the paper (≈ 29.0 M / 14.8 M, 2.2 M, 6.5 M)', async () => {
  await selectBackend('cpu');
  // Independent count (weights + biases + batch-norm γ, β), C = 32, C_img = 3, 27 taps per 3D kernel:
  // generator residual blocks (in, out): BN(in) 2·in + conv 27·in·out + BN(out) 2·out + conv 27·out² + shortcut in·out
  //   (3, 32):      6 + 2 592 + 64 + 27 648 + 96                  =     30 406
  //   (32, 512):    64 + 442 368 + 1 024 + 7 077 888 + 16 384      =  7 537 728
  //   (512, 512):   1 024 + 7 077 888 + 1 024 + 7 077 888          = 14 157 824  (the paper's extra block)
  //   (512, 256):   1 024 + 3 538 944 + 512 + 1 769 472 + 131 072  =  5 441 024
  //   (256, 128):   512 + 884 736 + 256 + 442 368 + 32 768         =  1 360 640
  //   (128, 64):    256 + 221 184 + 128 + 110 592 + 8 192          =    340 352
  //   (64, 32):     128 + 55 296 + 64 + 27 648 + 2 048             =     85 184
  // attention on 64 channels: θ, φ 64·8 each, g 64·32, out 32·64, gain 1 = 5 121
  // output: BN(32) 64 + conv 27·32·3 + bias 3 = 2 659
  // generator = 14 803 114 without the extra block, 28 960 938 with it.
  // D_f (2D, 9 taps, biases): 3→32 896, 32→64 18 496, 64→128 73 856, 128→256 295 168,
  //   256→256 ×3 590 080 each, 256→1 2 305 → 2 160 961.
  // D_s (3D, 27 taps): 2 624 + 55 360 + 221 312 + 884 992 + 3·1 769 728 + 6 913 → 6 480 385.
  assert.deepEqual(parameterCounts(PAPER_CONFIG), { generator: 28_960_938, frameDiscriminator: 2_160_961, sequenceDiscriminator: 6_480_385 });
  assert.equal(parameterCounts({ ...PAPER_CONFIG, extraBlock: false }).generator, 14_803_114);
  // The networks as built hold exactly as many trainable values as the formula says.
  for (const config of [PAPER_CONFIG, TINY]) {
    const nets = [new Generator(config, 1), new FrameDiscriminator(config, 1), new SequenceDiscriminator(config, 1)];
    const counts = parameterCounts(config);
    assert.deepEqual(nets.map((n) => n.parameterCount), [counts.generator, counts.frameDiscriminator, counts.sequenceDiscriminator]);
    for (const n of nets) n.dispose();
  }
});

test('both discriminators score real and fake in one batch exactly as in two (no batch statistics), gradients included', async () => {
  // The trainer's D step passes [real; fake] through each discriminator at once; that is only the
  // method's D step if no layer mixes clips.
  await selectBackend('wasm');
  const random = Random.fromKey('joint-discriminator');
  const clips = (): tf.Tensor5D => tf.tensor5d(Float32Array.from({ length: 3 * 4 * 16 * 16 }, () => random.uniform(-1, 1)), [3, 4, 16, 16, 1]);
  const [real, fake] = [clips(), clips()];
  for (const d of [new SequenceDiscriminator(TINY, 3), new FrameDiscriminator(TINY, 3)]) {
    const score = (x: tf.Tensor5D): tf.Tensor => (d instanceof SequenceDiscriminator ? d.apply(x) : d.apply(tf.reshape(x, [-1, 16, 16, 1]) as tf.Tensor4D));
    const vars = [...d.params.trainable.values()];
    const loss = (r: tf.Tensor, f: tf.Tensor): tf.Scalar => tf.add(tf.mean(tf.relu(tf.sub(1, r))), tf.mean(tf.relu(tf.add(1, f))));
    const apart = tf.variableGrads(() => loss(score(real), score(fake)), vars);
    const together = tf.variableGrads(() => {
      const [r, f] = tf.split(score(tf.concat([real, fake]) as tf.Tensor5D), 2) as [tf.Tensor, tf.Tensor];
      return loss(r, f);
    }, vars);
    assert.ok(Math.abs(apart.value.dataSync()[0]! - together.value.dataSync()[0]!) < 1e-6);
    for (const v of vars) {
      const [a, b] = [apart.grads[v.name]!.dataSync(), together.grads[v.name]!.dataSync()];
      let scale = 1e-12;
      for (const x of a) scale = Math.max(scale, Math.abs(x));
      a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) <= 1e-5 * scale, `${v.name}[${i}]: ${x} apart, ${b[i]} together`));
    }
    tf.dispose([apart.value, together.value, ...Object.values(apart.grads), ...Object.values(together.grads)]);
    d.dispose();
  }
  tf.dispose([real, fake]);
});

test('batch norm: (x − μ)/√(σ² + ε)·γ + β over all but channels, computed independently; its gradients; running statistics with momentum 0.1', async () => {
  for (const backend of ['cpu', 'wasm']) {
    await selectBackend(backend);
    const random = Random.fromKey('batch-norm');
    const [b, t, h, w, c] = [2, 3, 4, 5, 3];
    const xs = Float32Array.from({ length: b * t * h * w * c }, (_, i) => random.uniform(-2, 2) + (i % c));
    const params = new ParamStore('bn-test', 1);
    const bn = new BatchNorm(params, 'bn', c, 0.5);
    params.trainable.get('bn.beta')!.assign(tf.tensor1d([0.1, -0.2, 0.3]));
    const x = tf.tensor5d(xs, [b, t, h, w, c]);
    const y = bn.apply(x, { training: true }).dataSync();
    // Independent: per channel mean and biased variance in float64.
    const n = xs.length / c;
    const beta = [0.1, -0.2, 0.3];
    for (let ch = 0; ch < c; ch++) {
      let sum = 0;
      for (let i = ch; i < xs.length; i += c) sum += xs[i]!;
      const mean = sum / n;
      let sq = 0;
      for (let i = ch; i < xs.length; i += c) sq += (xs[i]! - mean) ** 2;
      const variance = sq / n;
      for (let i = ch; i < xs.length; i += c) {
        const expected = ((xs[i]! - mean) / Math.sqrt(variance + 1e-5)) * 0.5 + beta[ch]!;
        assert.ok(Math.abs(y[i]! - expected) < 1e-4, `${backend} channel ${ch} element ${i}: ${y[i]} against ${expected}`);
      }
      // Running statistics: 0.9·(0, 1) + 0.1·(μ, unbiased σ²).
      const running = params.state.get('bn.running-mean')!.dataSync()[ch]!;
      const runningVar = params.state.get('bn.running-var')!.dataSync()[ch]!;
      assert.ok(Math.abs(running - 0.1 * mean) < 1e-5, `${backend} running mean ${running}`);
      assert.ok(Math.abs(runningVar - (0.9 + 0.1 * (sq / (n - 1)))) < 1e-4, `${backend} running variance ${runningVar}`);
    }
    // Gradients, through μ and σ² too, against the textbook formula differentiated by tfjs.
    const gamma = params.trainable.get('bn.gamma')!;
    const weights = tf.randomUniform([b, t, h, w, c], -1, 1, 'float32', 3);
    const mine = tf.grads((xt: tf.Tensor, g: tf.Tensor) => tf.sum(tf.mul(weights, bn.apply(xt as tf.Tensor5D, { training: true, updateStatistics: false }))))([x, gamma]);
    const textbook = tf.grads((xt: tf.Tensor, g: tf.Tensor) => {
      const { mean, variance } = tf.moments(xt, [0, 1, 2, 3]);
      return tf.sum(tf.mul(weights, tf.add(tf.mul(tf.div(tf.sub(xt, mean), tf.sqrt(tf.add(variance, 1e-5))), g), params.trainable.get('bn.beta')!)));
    })([x, gamma]);
    for (let k = 0; k < 2; k++) {
      const [u, v] = [mine[k]!.dataSync(), textbook[k]!.dataSync()];
      let scale = 1e-12;
      for (const e of v) scale = Math.max(scale, Math.abs(e));
      u.forEach((e, i) => assert.ok(Math.abs(e - v[i]!) <= 1e-4 * scale, `${backend} gradient ${k} element ${i}: ${e} against ${v[i]}`));
    }
    tf.dispose([x, weights, ...mine, ...textbook]);
    params.dispose();
  }
});

test('weights start N(0, 0.02) and the same seed gives the same weights', async () => {
  await selectBackend('cpu');
  const a = new Generator(TINY, 7);
  const b = new Generator(TINY, 7);
  const w = a.params.trainable.get('block2.conv2.weight')!;
  const values = w.dataSync();
  let sum = 0;
  let sq = 0;
  for (const v of values) {
    sum += v;
    sq += v * v;
  }
  const mean = sum / values.length;
  const std = Math.sqrt(sq / values.length - mean * mean);
  // 27·32·32 = 27 648 draws: the sample std is within a few percent of 0.02.
  assert.ok(Math.abs(std - 0.02) < 0.001, `std ${std}`);
  assert.ok(Math.abs(mean) < 0.001, `mean ${mean}`);
  assert.deepEqual(Array.from(b.params.trainable.get('block2.conv2.weight')!.dataSync()), Array.from(values));
  a.dispose();
  b.dispose();
});

test('conv3dBy2d equals tf.conv3d (temporal stride 1, padding k // 2) on random shapes', async () => {
  await selectBackend('cpu');
  const random = Random.fromKey('conv3d');
  for (let n = 0; n < 6; n++) {
    const k = random.int(0, 1) ? 3 : 1;
    const stride = k === 3 ? random.int(1, 2) : 1;
    const [b, t, h, w, ci, co] = [random.int(1, 2), random.int(1, 5), random.int(3, 9), random.int(3, 9), random.int(1, 4), random.int(1, 4)];
    tf.tidy(() => {
      const x = tf.randomNormal([b, t, h, w, ci], 0, 1, 'float32', n) as tf.Tensor5D;
      const f = tf.randomNormal([k, k, k, ci, co], 0, 1, 'float32', 100 + n) as tf.Tensor5D;
      const mine = conv3dBy2d(x, f, stride);
      // Reference: tf.conv3d with explicit zero padding (conv3d takes only 'same'/'valid').
      const p = Math.floor(k / 2);
      const ref = tf.conv3d(tf.pad(x, [[0, 0], [p, p], [p, p], [p, p], [0, 0]]), f, [1, stride, stride], 'valid');
      assert.deepEqual(mine.shape, ref.shape);
      const err = tf.max(tf.abs(tf.sub(mine, ref))).dataSync()[0]!;
      assert.ok(err < 1e-4, `shape ${[b, t, h, w, ci, co]} k ${k} stride ${stride}: max error ${err}`);
    });
  }
});

/** Central finite differences of `loss` in `count` coordinates of `variable`, against tf.grad. */
function checkGradient(name: string, loss: () => tf.Scalar, variable: tf.Variable, count: number, random: Random, eps = 1e-2): void {
  const analytic = tf.tidy(() => tf.variableGrads(loss, [variable]).grads[variable.name]!.dataSync());
  const values = variable.dataSync().slice();
  for (let k = 0; k < count; k++) {
    const i = random.int(0, values.length - 1);
    const at = (delta: number): number => {
      const v = values.slice();
      v[i] = v[i]! + delta;
      variable.assign(tf.tensor(v, variable.shape));
      return tf.tidy(() => loss().dataSync()[0]!);
    };
    const numeric = (at(eps) - at(-eps)) / (2 * eps);
    variable.assign(tf.tensor(values, variable.shape));
    const a = analytic[i]!;
    assert.ok(Math.abs(numeric - a) <= 2e-2 * Math.max(1, Math.abs(a), Math.abs(numeric)), `${name}[${i}]: analytic ${a}, finite difference ${numeric}`);
  }
}

test('gradients of the spectrally normalised conv (2D and 3D) and of the attention block match finite differences', async () => {
  await selectBackend('cpu');
  const random = Random.fromKey('finite-differences');
  const params = new ParamStore('check', 3);
  const conv2 = new SNConv(params, 'c2', { dims: 2, inChannels: 3, outChannels: 4, kernel: 3, stride: 2, bias: true });
  const conv3 = new SNConv(params, 'c3', { dims: 3, inChannels: 2, outChannels: 3, kernel: 3, bias: false });
  const attention = new FrameAttention(params, 'att', 16);
  conv2.powerIterate();
  conv3.powerIterate();
  for (const c of attention.convs) c.powerIterate();
  // The gain starts at 0, which would hide every gradient of the attention's inner convolutions.
  params.trainable.get('att.gain')!.assign(tf.scalar(0.7));
  const x2 = tf.variable(tf.randomNormal([2, 7, 6, 3], 0, 1, 'float32', 1));
  const x3 = tf.variable(tf.randomNormal([1, 3, 5, 5, 2], 0, 1, 'float32', 2));
  const xa = tf.variable(tf.randomNormal([1, 2, 4, 4, 16], 0, 1, 'float32', 3));
  // A loss that weights every output differently: Σ r ⊙ f(x).
  const weighted = (y: tf.Tensor, seed: number): tf.Scalar => tf.sum(tf.mul(y, tf.randomNormal(y.shape, 0, 1, 'float32', seed))) as tf.Scalar;
  checkGradient('conv2d input', () => weighted(conv2.apply(x2 as tf.Tensor4D), 10), x2, 6, random);
  checkGradient('conv2d weight (through σ)', () => weighted(conv2.apply(x2 as tf.Tensor4D), 10), conv2.weight, 6, random);
  checkGradient('conv3d input', () => weighted(conv3.apply(x3 as tf.Tensor5D), 11), x3, 6, random);
  checkGradient('conv3d weight (through σ)', () => weighted(conv3.apply(x3 as tf.Tensor5D), 11), conv3.weight, 6, random);
  // Smaller steps through the attention: a step must not move which value wins a 2×2 max-pool.
  checkGradient('attention input', () => weighted(attention.apply(xa as tf.Tensor5D), 12), xa, 6, random, 5e-4);
  for (const name of ['att.theta.weight', 'att.phi.weight', 'att.g.weight', 'att.out.weight', 'att.gain']) {
    checkGradient(name, () => weighted(attention.apply(xa as tf.Tensor5D), 12), params.trainable.get(name)!, 3, random, 5e-4);
  }
  params.dispose();
  tf.dispose([x2, x3, xa]);
});

test('spectral normalisation: after power iterations the normalised weight has largest singular value ≈ 1', async () => {
  await selectBackend('cpu');
  const params = new ParamStore('sn', 5);
  const conv = new SNConv(params, 'c', { dims: 2, inChannels: 4, outChannels: 6, kernel: 3, bias: false });
  for (let i = 0; i < 50; i++) conv.powerIterate();
  // Independent check: the largest singular value of W/σ by power iteration on (W/σ)ᵀ(W/σ) in float64.
  const w = conv.weight.dataSync();
  const sigma = conv.sigma().dataSync()[0]!;
  const rows = w.length / 6;
  let v = Array.from({ length: 6 }, (_, i) => 1 + i);
  let top = 0;
  for (let it = 0; it < 200; it++) {
    const wv = Array.from({ length: rows }, (_, r) => v.reduce((s, vj, j) => s + (w[r * 6 + j]! / sigma) * vj, 0));
    const next = Array.from({ length: 6 }, (_, j) => wv.reduce((s, x, r) => s + (w[r * 6 + j]! / sigma) * x, 0));
    const norm = Math.hypot(...next);
    top = Math.sqrt(norm);
    v = next.map((x) => x / norm);
  }
  assert.ok(Math.abs(top - 1) < 1e-3, `largest singular value of W/σ is ${top}`);
  params.dispose();
});

async function drawerFor(name: string, config: GanConfig): Promise<{ drawer: MaskDrawer; fill: number; timeDependent: boolean }> {
  const { process, options } = chooseOcclusion(name, {});
  const drawer = await process.prepare(options as never, { frames: config.frames, height: config.height, width: config.width });
  return { drawer, fill: fillValue(process, [-1, 1]), timeDependent: process.timeDependent };
}

async function makeTrainer(config: GanConfig, occlusion = 'raindrops', extra: Partial<TrainerOptions> = {}): Promise<GanTrainer> {
  const { drawer, fill, timeDependent } = await drawerFor(occlusion, config);
  const shape = { frames: config.frames, height: config.height, width: config.width };
  return new GanTrainer({ config, seed: 4, fill, timeDependent, sampler: new MaskSampler(drawer, shape, Random.fromKey(4, 'fresh-masks')), learningRate: 1e-3, ...extra });
}

/** Observed batch number k: random clips under masks of the same process, all a function of k. */
async function batchAt(config: GanConfig, k: number, size = 2): Promise<{ y: tf.Tensor5D; m: tf.Tensor5D }> {
  const { drawer, fill } = await drawerFor('raindrops', config);
  const shape: [number, number, number, number, number] = [size, config.frames, config.height, config.width, config.channels];
  const masks = new Float32Array(size * config.frames * config.height * config.width);
  for (let i = 0; i < size; i++) masks.set(drawer.draw(Random.fromKey('observed', k, i)), (i * masks.length) / size);
  return tf.tidy(() => {
    const m = tf.tensor5d(masks, [size, config.frames, config.height, config.width, 1]);
    const x = tf.randomUniform(shape, -1, 1, 'float32', 1000 + k);
    return { y: tf.add(tf.mul(x, m), tf.mul(fill, tf.sub(1, m))) as tf.Tensor5D, m };
  });
}

test('wasm gradients of every network equal the cpu gradients within 1e-4 relative', async () => {
  // Small enough for the pure-JS cpu backend: six stride-2 layers still end on a 1×1 map.
  const config: GanConfig = { base: 2, channels: 3, frames: 3, height: 8, width: 8, extraBlock: false };
  const gradientsOn = async (backend: string): Promise<Map<string, Float32Array>> => {
    await selectBackend(backend);
    const g = new Generator(config, 9);
    const ds = new SequenceDiscriminator(config, 9);
    const df = new FrameDiscriminator(config, 9);
    for (const n of [g, ds, df]) n.powerIterate();
    // Continuous random input: with flat regions (occluded pixels all equal) a 2×2 max-pool has
    // ties, and backends may route its gradient to different, equally valid, winners.
    const y = tf.randomUniform([2, config.frames, config.height, config.width, 3], -1, 1, 'float32', 5) as tf.Tensor5D;
    const vars = [g, ds, df].flatMap((n) => [...n.params.trainable].map(([k, v]) => [`${n.params.network}/${k}`, v] as const));
    const out = new Map<string, Float32Array>();
    tf.tidy(() => {
      // Each network on its own, under a loss that weights every output differently (Σ r ⊙ f(y)).
      const weighted = (t: tf.Tensor, seed: number): tf.Scalar => tf.sum(tf.mul(t, tf.randomNormal(t.shape, 0, 1, 'float32', seed))) as tf.Scalar;
      const frames = tf.reshape(y, [2 * config.frames, config.height, config.width, 3]) as tf.Tensor4D;
      const grads = {
        ...tf.variableGrads(() => weighted(g.apply(y, { training: true }), 1), [...g.params.trainable.values()]).grads,
        ...tf.variableGrads(() => weighted(ds.apply(y), 2), [...ds.params.trainable.values()]).grads,
        ...tf.variableGrads(() => weighted(df.apply(frames), 3), [...df.params.trainable.values()]).grads,
      };
      for (const [key, v] of vars) out.set(key, grads[v.name]!.dataSync() as Float32Array);
    });
    for (const n of [g, ds, df]) n.dispose();
    y.dispose();
    return out;
  };
  const cpu = await gradientsOn('cpu');
  const wasm = await gradientsOn('wasm');
  assert.equal(wasm.size, cpu.size);
  // Relative to the largest gradient of the same network (a single element that is a sum with heavy
  // cancellation can differ by float32 summation order alone).
  const scaleOf = new Map<string, number>();
  for (const [key, g] of cpu) {
    const net = key.split('/')[0]!;
    let s = scaleOf.get(net) ?? 0;
    for (const v of g) s = Math.max(s, Math.abs(v));
    scaleOf.set(net, s);
  }
  let checked = 0;
  let worst = 0;
  for (const [key, reference] of cpu) {
    const actual = wasm.get(key)!;
    const scale = scaleOf.get(key.split('/')[0]!)!;
    for (let i = 0; i < reference.length; i++) {
      const rel = Math.abs(actual[i]! - reference[i]!) / scale;
      worst = Math.max(worst, rel);
      if (rel > 1e-4) assert.fail(`${key}[${i}]: wasm ${actual[i]}, cpu ${reference[i]} (relative ${rel.toExponential(2)})`);
    }
    checked += 1;
  }
  assert.ok(checked > 40, `compared ${checked} gradients`);
});

const comparable = (r: StepRecord): number[] => [r.step, r.lossG, r.lossD, r.dsReal, r.dsFake, r.dfReal, r.dfFake, r.gradNormG, r.gradNormD, r.learningRate, r.position];

test('a run stopped after k steps and resumed from its checkpoint repeats the uninterrupted run', async () => {
  await selectBackend('wasm');
  const steps = 5;
  const k = 2;
  const straight = await makeTrainer(TINY);
  const expected: number[][] = [];
  for (let s = 0; s < steps; s++) {
    const { y, m } = await batchAt(TINY, s);
    expected.push(comparable(await straight.trainStep(y, m)));
    tf.dispose([y, m]);
  }
  straight.dispose();

  const first = await makeTrainer(TINY);
  for (let s = 0; s < k; s++) {
    const { y, m } = await batchAt(TINY, s);
    await first.trainStep(y, m);
    tf.dispose([y, m]);
  }
  const dir = join(scratch, 'resume');
  saveCheckpoint(dir, await first.snapshot());
  first.dispose();

  const resumed = await makeTrainer(TINY);
  const [latest] = listCheckpoints(dir);
  resumed.restore(loadCheckpoint<TrainerState>(latest!.path));
  assert.equal(resumed.step, k);
  for (let s = k; s < steps; s++) {
    const { y, m } = await batchAt(TINY, s);
    const got = comparable(await resumed.trainStep(y, m));
    tf.dispose([y, m]);
    got.forEach((v, i) => assert.ok(Math.abs(v - expected[s]![i]!) <= 1e-5 * Math.max(1, Math.abs(v)), `step ${s + 1}, field ${i}: resumed ${v}, uninterrupted ${expected[s]![i]}`));
  }
  resumed.dispose();
});

test('training leaks no tensors: the live count is flat across 20 steps', async () => {
  await selectBackend('wasm');
  const trainer = await makeTrainer(TINY);
  const { y, m } = await batchAt(TINY, 0);
  await trainer.trainStep(y, m);
  const before = tf.memory().numTensors;
  for (let s = 0; s < 20; s++) await trainer.trainStep(y, m);
  tf.dispose(trainer.inpaint(y, m));
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([y, m]);
  trainer.dispose();
});

test('the self-supervised fill term: 0 and absent from the loss when off; when on, finite, leak-free, and it falls as G trains', async () => {
  await selectBackend('wasm');
  const { y, m } = await batchAt(TINY, 0);
  const off = await makeTrainer(TINY);
  const r0 = await off.trainStep(y, m);
  assert.equal(r0.lossSelf, 0);
  off.dispose();
  // The same trainer with λ = 0 explicitly gives bit-identical records: the paper's path is untouched.
  const zero = await makeTrainer(TINY, 'raindrops', { selfSupervisedWeight: 0 });
  assert.deepEqual(comparable(await zero.trainStep(y, m)), comparable(r0));
  zero.dispose();

  // Discriminators frozen (learning rate 0), so that G's only moving target is the fill term.
  const on = await makeTrainer(TINY, 'raindrops', { selfSupervisedWeight: 10, discriminatorLearningRate: 0 });
  const first = await on.trainStep(y, m);
  assert.ok(first.lossSelf > 0 && first.lossSelf < 2, `|x̂ − y| in [−1, 1] units: ${first.lossSelf}`);
  // G's loss is the two hinge terms (each ≈ 1 while D scores ≈ 0) plus the weighted fill term.
  assert.ok(Math.abs(first.lossG - 10 * first.lossSelf - 2) < 0.5, `lossG ${first.lossG} = hinge + 10 × ${first.lossSelf}`);
  const before = tf.memory().numTensors;
  const later: number[] = [];
  for (let s = 0; s < 24; s++) later.push((await on.trainStep(y, m)).lossSelf);
  assert.equal(tf.memory().numTensors, before);
  const tail = later.slice(-4).reduce((a, v) => a + v, 0) / 4;
  assert.ok(tail < 0.8 * first.lossSelf, `fill term ${first.lossSelf} at step 1, ${tail} over steps 22-25`);
  tf.dispose([y, m]);
  on.dispose();
});

test('the mean offset: an untrained generator fills each clip with close to its own visible mean; without it, far from it', async () => {
  await selectBackend('wasm');
  // Two clips with different brightness, holes white (+1) as raindrops leave them.
  const rng = Random.fromKey('mean-offset-test');
  const n = TINY.frames * TINY.height * TINY.width;
  const centres = [-0.5, 0.4];
  const yv = new Float32Array(2 * n);
  const mv = new Float32Array(2 * n);
  const visibleMean = centres.map((c, b) => {
    let sum = 0;
    let count = 0;
    for (let i = 0; i < n; i++) {
      const visible = rng.uniform() < 0.75;
      mv[b * n + i] = visible ? 1 : 0;
      yv[b * n + i] = visible ? c + 0.3 * (rng.uniform() - 0.5) : 1;
      if (visible) (sum += yv[b * n + i]!, count++);
    }
    return sum / count;
  });
  const y = tf.tensor5d(yv, [2, TINY.frames, TINY.height, TINY.width, 1]);
  const m = tf.tensor5d(mv, [2, TINY.frames, TINY.height, TINY.width, 1]);
  // Mean distance from the clip's visible mean over the holes, per clip, after the spectral norms settled.
  const distances = (config: GanConfig): number[] => {
    const g = new Generator(config, 5);
    for (let k = 0; k < 30; k++) g.powerIterate();
    const phi = tf.tidy(() => g.apply(y, { training: true, updateStatistics: false }, m).dataSync() as Float32Array);
    g.dispose();
    return visibleMean.map((mu, b) => {
      let sum = 0;
      let holes = 0;
      for (let i = 0; i < n; i++) if (mv[b * n + i] === 0) (sum += Math.abs(phi[b * n + i]! - mu), holes++);
      return sum / holes;
    });
  };
  const offset = distances({ ...TINY, meanOffset: true });
  assert.ok(offset.every((d) => d < 0.12), `with the offset, holes on average within ${offset.map((d) => d.toFixed(3)).join(', ')} of the visible means ${visibleMean.map((v) => v.toFixed(3)).join(', ')}`);
  const paper = distances(TINY);
  assert.ok(Math.min(...paper) > 2 * Math.max(...offset), `the paper's generator fills farther from the means: ${paper.map((d) => d.toFixed(3)).join(', ')}`);
  const needsMasks = new Generator({ ...TINY, meanOffset: true }, 1);
  assert.throws(() => tf.tidy(() => needsMasks.apply(y, { training: false })), /needs the masks/);
  needsMasks.dispose();
  tf.dispose([y, m]);
});

test('the average of G\'s weights: it fills, leaves the trained weights as they were, is checkpointed and leaks nothing', async () => {
  await selectBackend('wasm');
  const { y, m } = await batchAt(TINY, 0);
  const plain = await makeTrainer(TINY);
  const averaged = await makeTrainer(TINY, 'raindrops', { generatorAverage: 0.9 });
  for (let s = 0; s < 4; s++) assert.deepEqual(comparable(await averaged.trainStep(y, m)), comparable(await plain.trainStep(y, m)), 'the average does not change training');
  const live = [...averaged.generator.params.trainable.values()].map((v) => v.dataSync().slice());
  const before = tf.memory().numTensors;
  const filled = averaged.inpaint(y, m);
  const direct = plain.inpaint(y, m);
  assert.equal(tf.memory().numTensors, before + 2);
  assert.notDeepEqual(filled.dataSync(), direct.dataSync(), 'the averaged weights fill differently');
  [...averaged.generator.params.trainable.values()].forEach((v, i) => assert.deepEqual(v.dataSync(), live[i], 'trained weights restored'));
  const snapshot = await averaged.snapshot();
  assert.equal(snapshot.state.generatorAverage, 0.9);
  assert.ok([...snapshot.arrays.keys()].some((k) => k.startsWith('g-average/')));
  const restored = await makeTrainer(TINY, 'raindrops', { generatorAverage: 0.9 });
  restored.restore(snapshot);
  assert.deepEqual(restored.inpaint(y, m).dataSync(), filled.dataSync());
  tf.dispose([filled, direct, y, m]);
  for (const t of [plain, averaged, restored]) t.dispose();
});

test('weights made non-finite by the update stop training at that step, though its losses were finite; a checkpoint holding them is refused', async () => {
  await selectBackend('wasm');
  // A learning rate beyond float32's range: the losses of step 1 are computed before the update
  // and are finite; the weights after it are ±Inf.
  const trainer = await makeTrainer(TINY, 'raindrops', { learningRate: 1e39 });
  const { y, m } = await batchAt(TINY, 0);
  await assert.rejects(trainer.trainStep(y, m), (err: Error) => err instanceof NonFiniteLossError && /training diverged at step 1: .*sum of the weights = (NaN|-?Infinity)/.test(err.message) && !/lossG/.test(err.message));
  assert.equal(trainer.healthy, false);
  // The store refuses to write such weights; written anyway (by an older build, or by hand, here
  // by patching a finite checkpoint's data and digest), they are refused by name when read (resume, apply).
  const snapshot = await trainer.snapshot();
  const bad = [...snapshot.arrays].find(([, a]) => a.values.some((v) => !Number.isFinite(v)))![0];
  const dir = join(scratch, 'non-finite');
  assert.throws(() => saveCheckpoint(dir, snapshot), /checkpoint step-1 not written: array ".*" holds \d+ non-finite values/);
  const finite = new Map([...snapshot.arrays].map(([name, a]) => [name, { shape: a.shape, values: a.values.map((v) => (Number.isFinite(v) ? v : 0)) }]));
  const path = saveCheckpoint(dir, { ...snapshot, arrays: finite });
  const index = JSON.parse(readFileSync(join(path, 'checkpoint.json'), 'utf8')) as { sha256: string; arrays: Array<{ name: string; offset: number }> };
  const data = readFileSync(join(path, 'tensors.bin'));
  data.writeFloatLE(NaN, index.arrays.find((a) => a.name === bad)!.offset);
  writeFileSync(join(path, 'tensors.bin'), data);
  writeFileSync(join(path, 'checkpoint.json'), JSON.stringify({ ...index, sha256: createHash('sha256').update(data).digest('hex') }));
  const fresh = await makeTrainer(TINY);
  assert.throws(() => fresh.restore(loadCheckpoint<TrainerState>(listCheckpoints(dir)[0]!.path)), new RegExp(`checkpoint array "${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" holds \\d+ non-finite values`));
  tf.dispose([y, m]);
  trainer.dispose();
  fresh.dispose();
});

test('a NaN loss stops training with a clear error and the trainer refuses to go on or be checkpointed', async () => {
  await selectBackend('wasm');
  const trainer = await makeTrainer(TINY);
  const { y, m } = await batchAt(TINY, 0);
  const w = trainer.frameDiscriminator.params.trainable.get('conv8.bias')!;
  w.assign(tf.fill(w.shape, NaN));
  await assert.rejects(trainer.trainStep(y, m), (err: Error) => err instanceof NonFiniteLossError && /training diverged at step 1: .*NaN.*last good checkpoint is kept/.test(err.message));
  assert.equal(trainer.healthy, false);
  await assert.rejects(trainer.trainStep(y, m), /diverged earlier/);
  tf.dispose([y, m]);
  trainer.dispose();
});

test('a short training run on the synthetic set lowers the masked MAE of x̂ below its value at step 0', async () => {
  await selectBackend('wasm');
  const config: GanConfig = { ...TINY, frames: 4, height: 16, width: 16 };
  const { checkSyntheticOptions, syntheticClip } = await import('../../datasets/synthetic.ts');
  const data = checkSyntheticOptions({ clips: 200, frames: config.frames, size: config.height, channels: 1 });
  const { drawer } = await drawerFor('raindrops', config);
  // Observed clips y = x·m + 1·(1 − m) in [−1, 1]; the clean x is kept aside for the measurement only.
  const clips = (first: number, n: number): { y: tf.Tensor5D; m: tf.Tensor5D; x: tf.Tensor5D } => {
    const size = config.frames * config.height * config.width;
    const [x, m] = [new Float32Array(n * size), new Float32Array(n * size)];
    for (let i = 0; i < n; i++) {
      const clean = syntheticClip(data, first + i).frames;
      const mask = drawer.draw(Random.fromKey('observed', first + i));
      for (let j = 0; j < size; j++) {
        x[i * size + j] = clean[j]! / 127.5 - 1;
        m[i * size + j] = mask[j]!;
      }
    }
    const shape: [number, number, number, number, number] = [n, config.frames, config.height, config.width, 1];
    return tf.tidy(() => {
      const xt = tf.tensor5d(x, shape);
      const mt = tf.tensor5d(m, shape);
      return { x: xt, m: mt, y: tf.add(tf.mul(xt, mt), tf.sub(1, mt)) as tf.Tensor5D };
    });
  };
  const heldOut = clips(150, 8);
  const maskedMae = (t: GanTrainer): number =>
    tf.tidy(() => {
      const hole = tf.sub(1, heldOut.m);
      return tf.div(tf.sum(tf.mul(tf.abs(tf.sub(t.inpaint(heldOut.y, heldOut.m), heldOut.x)), hole)), tf.sum(hole)).dataSync()[0]!;
    });
  const trainer = await makeTrainer(config);
  const before = maskedMae(trainer);
  for (let s = 0; s < 12; s++) {
    const b = clips((s * 4) % 120, 4);
    await trainer.trainStep(b.y, b.m);
    tf.dispose([b.x, b.y, b.m]);
  }
  const afterTraining = maskedMae(trainer);
  assert.ok(afterTraining < before, `masked MAE ${afterTraining} after 12 steps, ${before} at step 0`);
  tf.dispose([heldOut.x, heldOut.y, heldOut.m]);
  trainer.dispose();
});

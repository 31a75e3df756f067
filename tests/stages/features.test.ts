/**
 * FID and FVD from folders: the exact sample route of the Fréchet distance against the moments
 * route; tfjs graph models with Inception-v3's and I3D's shapes, written here as a user's converted
 * model would be (model.json and a weight shard), loaded from a folder and over HTTP, their shapes
 * checked; `fid` and `fvd` on folders of lossless images and videos against an independent
 * computation of the same features.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { main } from '../../cli/main.ts';
import { selectBackend } from '../../pipeline/backend.ts';
import { FeatureModel } from '../../stages/eval/features.ts';
import { FeatureMoments, frechetDistance, frechetFromSamples } from '../../stages/eval/frechet.ts';
import { ffmpegPath } from '../../stages/io/video.ts';
import { Random } from '../../stages/random.ts';
import { Q, writeGraphModel } from '../fixtures/graph-model.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-features-'));
let server: Server;
let base = '';
after(() => {
  server?.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** Flat-colour patches over a random background: their mean RGB in [−1, 1] is what the models see. */
function picture(random: Random, size: number): Uint8Array {
  const px = new Uint8Array(size * size * 3);
  const colours = [0, 1, 2].map(() => [0, 1, 2].map(() => random.int(0, 255)));
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) px.set(colours[(x > size / 2 ? 1 : 0) + (y > size / 3 ? 1 : 0)]!, (y * size + x) * 3);
  return px;
}
const meanRgb = (px: Uint8Array): number[] => [0, 1, 2].map((k) => (2 * px.reduce((a, v, i) => (i % 3 === k ? a + v : a), 0)) / (px.length / 3) / 255 - 1);

before(async () => {
  // The cpu backend sums in a fixed order, exactly enough for golden comparisons: with 4 or 5
  // vectors the square roots of tiny covariance eigenvalues magnify wasm's float32 summation error
  // (1e-6) to 1e-3 of the distance. The models themselves run on any backend.
  await selectBackend('cpu');
  writeGraphModel(join(scratch, 'inception'), { inputShape: [-1, 299, 299, 3], axes: [1, 2], out: 2048 });
  writeGraphModel(join(scratch, 'i3d'), { inputShape: [-1, -1, 224, 224, 3], axes: [1, 2, 3], out: 400 });
  writeGraphModel(join(scratch, 'wrong'), { inputShape: [-1, 299, 299, 3], axes: [1, 2], out: 1000 });
  server = createServer((req, res) => {
    try {
      const body = readFileSync(join(scratch, decodeURIComponent(req.url ?? '/')));
      res.writeHead(200, { 'Content-Length': body.length });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

test('the sample route equals the moments route, with fewer and with more vectors than dimensions', () => {
  for (const [d, n1, n2] of [[6, 4, 5], [5, 30, 22]] as const) {
    const random = Random.fromKey('frechet-samples', d);
    const a = Float64Array.from({ length: n1 * d }, () => random.uniform(-1, 1));
    const b = Float64Array.from({ length: n2 * d }, (_, i) => random.uniform(-1, 1) * (1 + (i % d) / 3) + 0.2);
    const ma = new FeatureMoments(d);
    ma.add(a);
    const mb = new FeatureMoments(d);
    mb.add(b);
    const want = frechetDistance(ma.gaussian(), mb.gaussian());
    assert.ok(Math.abs(frechetFromSamples(a, b, d) - want) < 1e-9 * Math.max(1, want), `d ${d}: ${frechetFromSamples(a, b, d)} vs ${want}`);
  }
});

test('graph models load from a folder and over HTTP, their shapes are checked, and inference leaks nothing', async () => {
  const local = await FeatureModel.load(join(scratch, 'inception'), 'inception');
  const remote = await FeatureModel.load(`${base}/inception/model.json`, 'inception');
  const px = picture(Random.fromKey('p', 0), 299);
  const pixels = Float32Array.from(px, (v) => v / 255);
  const shape = { count: 1, height: 299, width: 299, channels: 3 };
  const f = await local.features(pixels, shape);
  assert.deepEqual(await remote.features(pixels, shape), f);
  const g = meanRgb(px);
  for (let j = 0; j < 3; j++) assert.ok(Math.abs(f[j]! - g.reduce((a, v, i) => a + v * Q[i]![j]!, 0)) < 1e-5);
  const before = tf.memory().numTensors;
  await local.features(pixels, shape);
  assert.equal(tf.memory().numTensors, before);
  local.dispose();
  remote.dispose();
  await assert.rejects(FeatureModel.load(join(scratch, 'wrong'), 'inception'), /output shape \[1, 1000\]; FID needs \[N, 2048\]/);
  await assert.rejects(FeatureModel.load(join(scratch, 'inception'), 'i3d'), /input shape \[-1, 299, 299, 3\]; FVD needs \[N, T, 224, 224, 3\]/);
  await assert.rejects(FeatureModel.load(`${base}/nothing`, 'inception'), /--model .*nothing: .*model\.json answered HTTP 404/);
});

test('fid and fvd on folders equal the distance of the independently computed features', async () => {
  const random = Random.fromKey('folders');
  const colours: Record<string, number[][]> = { a: [], b: [] };
  for (const side of ['a', 'b']) {
    mkdirSync(join(scratch, 'frames', side), { recursive: true });
    for (let k = 0; k < 5; k++) {
      const px = picture(random, 299);
      colours[side]!.push(meanRgb(px));
      await sharp(px, { raw: { width: 299, height: 299, channels: 3 } }).png().toFile(join(scratch, 'frames', side, `${k}.png`));
    }
  }
  const moments = (rows: number[][]): FeatureMoments => {
    const m = new FeatureMoments(3);
    m.add(rows.flat());
    return m;
  };
  const want = frechetDistance(moments(colours['a']!).gaussian(), moments(colours['b']!).gaussian());
  const out: string[] = [];
  assert.equal(await main(['fid', join(scratch, 'frames', 'a'), join(scratch, 'frames', 'b'), '--model', join(scratch, 'inception'), '--json'], { out: (l) => out.push(l), err: () => {} }), 0);
  const fid = (JSON.parse(out.at(-1)!) as { fid: number }).fid;
  assert.ok(Math.abs(fid - want) < 1e-4 * Math.max(1, want), `fid ${fid}, independent ${want}`);

  // FVD: lossless RGB videos (FFV1), each clip the mean colour over its first 4 frames.
  const clips: Record<string, number[][]> = { a: [], b: [] };
  for (const side of ['a', 'b']) {
    mkdirSync(join(scratch, 'videos', side), { recursive: true });
    for (let k = 0; k < 4; k++) {
      const frames = [0, 1, 2, 3, 4].map(() => picture(random, 224));
      clips[side]!.push([0, 1, 2].map((ch) => frames.slice(0, 4).reduce((a, f) => a + meanRgb(f)[ch]!, 0) / 4));
      execFileSync(ffmpegPath(), ['-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', '224x224', '-r', '25', '-i', '-', '-c:v', 'ffv1', '-pix_fmt', 'bgr0', join(scratch, 'videos', side, `${k}.mkv`)], { input: Buffer.concat(frames) });
    }
  }
  const fvdWant = frechetDistance(moments(clips['a']!).gaussian(), moments(clips['b']!).gaussian());
  assert.equal(await main(['fvd', join(scratch, 'videos', 'a'), join(scratch, 'videos', 'b'), '--model', `${base}/i3d`, '--frames', '4', '--json'], { out: (l) => out.push(l), err: () => {} }), 0);
  const fvd = (JSON.parse(out.at(-1)!) as { fvd: number }).fvd;
  assert.ok(Math.abs(fvd - fvdWant) < 1e-4 * Math.max(1, fvdWant), `fvd ${fvd}, independent ${fvdWant}`);
});

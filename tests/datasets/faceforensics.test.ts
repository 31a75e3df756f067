/**
 * FaceForensics++ from fixture videos made here by a real ffmpeg: one from the sample photo that
 * ships with @vladmandic/face-api (a face at a known place), one without a face (testsrc).
 * Face crops land on the face (closer to the known face region than the centre crop is); centre
 * crops equal an independent crop-and-resize of ffmpeg's own frames; short videos are padded;
 * the split is by video; a video without a face is named, or skipped; the detector does not leak
 * tensors.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { lastValueFrom, toArray } from 'rxjs';
import { findDataset, type DatasetClip } from '../../datasets/index.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { Telemetry, metered } from '../../pipeline/telemetry.ts';
import { detectFace, squareAround } from '../../stages/frames/face.ts';
import { decodeVideoBytes, ffmpegPath } from '../../stages/io/video.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-ff-'));
const videos = join(scratch, 'videos');
after(() => rmSync(scratch, { recursive: true, force: true }));

const W = 320;
const H = 240;
// The right-hand face of sample1.jpg (1920×1280) lies about x 1476-1677, y 201-438; the fixture
// frame is the 960×720 region from x = 960, scaled by 1/3: the face near x 172-239, y 67-146.
const FACE = { x: 172, y: 67, width: 67, height: 79 };

before(async () => {
  mkdirSync(join(videos, 'youtube'), { recursive: true });
  const photo = join(dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')), 'demo', 'sample1.jpg');
  const still = join(scratch, 'face.png');
  await sharp(photo).extract({ left: 960, top: 0, width: 960, height: 720 }).resize(W, H).png().toFile(still);
  const encode = (input: string[], frames: number, out: string): void => void execFileSync(ffmpegPath(), ['-v', 'error', '-y', ...input, '-frames:v', String(frames), '-c:v', 'mpeg4', '-q:v', '2', '-pix_fmt', 'yuv420p', out]);
  encode(['-loop', '1', '-framerate', '25', '-i', still], 6, join(videos, 'youtube', '000.mp4'));
  encode(['-f', 'lavfi', '-i', `testsrc=size=${W}x${H}:rate=25`], 10, join(videos, 'youtube', '001.mp4'));
});

async function open(options: Record<string, unknown>, location = videos, onError: 'fail' | 'skip' = 'fail'): Promise<{ clips: DatasetClip[]; skipped: string[] }> {
  const telemetry = new Telemetry();
  const skipped: string[] = [];
  telemetry.events$.subscribe((e) => e.kind === 'skipped' && skipped.push(e.message));
  const clips = await lastValueFrom(metered(telemetry, findDataset('faceforensics').open(options, location, { onError }).clips).pipe(unwrap(), toArray()));
  return { clips, skipped };
}

/** A square of ffmpeg's own first frame, resized with sharp to size×size. */
async function reference(video: string, square: { x: number; y: number; size: number }, size: number): Promise<Uint8Array> {
  const [first] = await decodeVideoBytes(readFileSync(video), video, { width: W, height: H, pixFmt: 'rgb24' });
  const { data } = await sharp(first!, { raw: { width: W, height: H, channels: 3 } }).extract({ left: square.x, top: square.y, width: square.size, height: square.size }).resize(size, size, { kernel: 'lanczos3' }).raw().toBuffer({ resolveWithObject: true });
  return new Uint8Array(data);
}
const mad = (a: Uint8Array, b: Uint8Array): number => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;

test('the detector finds the fixture face where it is, and does not leak tensors', async () => {
  const [first] = await decodeVideoBytes(readFileSync(join(videos, 'youtube', '000.mp4')), '000', { width: W, height: H, pixFmt: 'rgb24' });
  const face = await detectFace(first!, H, W);
  assert.ok(face, 'a face is found');
  const centre = (b: { x: number; width: number; y: number; height: number }) => [b.x + b.width / 2, b.y + b.height / 2];
  const [cx, cy] = centre(face);
  const [ex, ey] = centre(FACE);
  assert.ok(Math.hypot(cx! - ex!, cy! - ey!) < 20, `face centre (${cx}, ${cy}), expected near (${ex}, ${ey})`);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) await detectFace(first!, H, W);
  assert.equal(tf.memory().numTensors, before);
});

test('face crops land on the face, centre crops are exact, short videos are padded, the split is by video', async () => {
  const T = 8; // the face video has 6 frames: the last is repeated twice
  const faces = (await open({ frames: T, size: 32 }, join(videos, 'youtube', '000.mp4'))).clips;
  assert.equal(faces.length, 1);
  const clip = faces[0]!;
  assert.equal(clip.frames.length, T * 32 * 32 * 3);
  const frame = (c: DatasetClip, t: number) => c.frames.subarray(t * 3072, (t + 1) * 3072) as Uint8Array;
  assert.deepEqual(frame(clip, 7), frame(clip, 5), 'padding repeats the last frame');
  const onFace = await reference(join(videos, 'youtube', '000.mp4'), squareAround(FACE, H, W, 1.3), 32);
  const inCentre = await reference(join(videos, 'youtube', '000.mp4'), { x: 40, y: 0, size: 240 }, 32);
  assert.ok(mad(frame(clip, 0), onFace) < 0.5 * mad(frame(clip, 0), inCentre), `face crop vs known face ${mad(frame(clip, 0), onFace)}, vs centre ${mad(frame(clip, 0), inCentre)}`);

  const centred = (await open({ frames: 4, size: 32, crop: 'centre' }, join(videos, 'youtube', '001.mp4'))).clips[0]!;
  const want = await reference(join(videos, 'youtube', '001.mp4'), { x: 40, y: 0, size: 240 }, 32);
  assert.ok(mad(frame(centred, 0), want) < 0.01, `centre crop differs from the reference by ${mad(frame(centred, 0), want)}`);

  const a = (await open({ frames: 2, size: 16, crop: 'centre', seed: 3 })).clips.map((c) => [c.id, c.split]);
  assert.deepEqual(a.map(([id]) => id), ['youtube/000.mp4#0', 'youtube/001.mp4#0']);
  assert.deepEqual((await open({ frames: 2, size: 16, crop: 'centre', seed: 3 })).clips.map((c) => [c.id, c.split]), a);
});

test('parts (ranges of the split\'s videos, as workers take them) give, one after the other, the whole read', async () => {
  const options = { crop: 'centre', frames: 4, size: 16, 'clips-per-video': 2 };
  const whole = (await open(options)).clips.map((c) => [c.id, Buffer.from(c.frames).toString('base64')]);
  const parts = await findDataset('faceforensics').parts!(options, videos, 2);
  assert.deepEqual(parts, [{ 'videos-from': 0, 'videos-until': 1 }, { 'videos-from': 1, 'videos-until': 2 }]);
  const joined = [];
  for (const part of parts) joined.push(...(await open({ ...options, ...part })).clips.map((c) => [c.id, Buffer.from(c.frames).toString('base64')]));
  assert.deepEqual(joined, whole);
});

test('a video without a face is named, or skipped and counted; a folder without videos is refused', async () => {
  await assert.rejects(open({ frames: 4, size: 16 }, join(videos, 'youtube', '001.mp4')), /clip "youtube\/001\.mp4#0"|001\.mp4.*no face above confidence 0\.5 in the clip's first frame/);
  const { clips, skipped } = await open({ frames: 4, size: 16 }, videos, 'skip');
  assert.deepEqual(clips.map((c) => c.id), ['youtube/000.mp4#0']);
  assert.equal(skipped.length, 1);
  assert.match(skipped[0]!, /001\.mp4.*no face/);
  assert.throws(() => findDataset('faceforensics').open({}, scratch + '/none'), /--source .*none: no such file or folder/);
  mkdirSync(join(scratch, 'empty'));
  assert.throws(() => findDataset('faceforensics').open({}, join(scratch, 'empty')), /no videos \(\.mp4, \.avi, \.mkv, \.mov, \.webm\) under it/);
});

/**
 * Frame fitting: truncation and padding to T frames are exact; resizing (sharp, Lanczos) keeps a
 * flat frame flat, keeps a frame's mean when halving a smooth gradient, crops the centre when the
 * aspect ratio changes, and converts gray ↔ colour; the stage refuses occluded or float clips.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import type { Clip } from '../../pipeline/frame-batch.ts';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { fitClipPixels, fitClips, fitFrames, resizeFrame } from '../../stages/frames/fit.ts';

test('truncate or pad to T: padding repeats the last frame', () => {
  const shape = { frames: 3, height: 1, width: 2, channels: 1 };
  const clip = Uint8Array.from([1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...fitFrames(clip, shape, 2)], [1, 2, 3, 4]);
  assert.deepEqual([...fitFrames(clip, shape, 5)], [1, 2, 3, 4, 5, 6, 5, 6, 5, 6]);
  assert.equal(fitFrames(clip, shape, 3), clip, 'the same length is not copied');
  assert.ok(fitFrames(Float32Array.from(clip), shape, 4) instanceof Float32Array);
});

test('resize: flat stays flat, a halved gradient keeps its mean, the centre is cropped, gray ↔ colour', async () => {
  const flat = new Uint8Array(40 * 30).fill(77);
  assert.ok((await resizeFrame(flat, { height: 30, width: 40, channels: 1 }, { height: 16, width: 16, channels: 1 })).every((v) => v === 77));

  // A horizontal ramp 0…252 over 64 columns, halved: columns pair-average, the mean stays 126.
  const ramp = Uint8Array.from({ length: 64 * 64 }, (_, i) => (i % 64) * 4);
  const half = await resizeFrame(ramp, { height: 64, width: 64, channels: 1 }, { height: 32, width: 32, channels: 1 });
  assert.equal(half.length, 32 * 32);
  const mean = half.reduce((a, v) => a + v, 0) / half.length;
  assert.ok(Math.abs(mean - 126) < 1.5, `mean ${mean}`);
  for (let x = 1; x < 31; x++) assert.ok(Math.abs(half[x]! - (8 * x + 2)) <= 3, `column ${x}: ${half[x]} for about ${8 * x + 2}`);

  // 160×120 → 64×64 crops the centre 120×120: a frame dark in the outer 10 columns each side comes out bright.
  const wide = Uint8Array.from({ length: 120 * 160 }, (_, i) => (i % 160 < 10 || i % 160 >= 150 ? 0 : 200));
  const square = await resizeFrame(wide, { height: 120, width: 160, channels: 1 }, { height: 64, width: 64, channels: 1 });
  assert.ok(square.every((v) => v === 200), 'only the centre square is kept');

  const rgb = await resizeFrame(flat, { height: 30, width: 40, channels: 1 }, { height: 8, width: 8, channels: 3 });
  assert.equal(rgb.length, 8 * 8 * 3);
  assert.ok(rgb.every((v) => v === 77));
  const colour = Uint8Array.from({ length: 8 * 8 * 3 }, (_, i) => [255, 0, 0][i % 3]!);
  const gray = await resizeFrame(colour, { height: 8, width: 8, channels: 3 }, { height: 8, width: 8, channels: 1 });
  // Pure red in Rec. 601 luma: round(0.299 · 255) = 76.
  assert.ok(gray.every((v) => v === 76), `red as gray: ${gray[0]}`);
});

test('fitClipPixels and the stage: every frame resized, then padded; occluded or float clips refused', async () => {
  const from = { frames: 2, height: 4, width: 4, channels: 1 };
  const to = { frames: 3, height: 2, width: 2, channels: 1 };
  const pixels = Uint8Array.from({ length: 32 }, (_, i) => (i < 16 ? 10 : 90));
  assert.deepEqual([...(await fitClipPixels(pixels, from, to))], [10, 10, 10, 10, 90, 90, 90, 90, 90, 90, 90, 90]);

  const run = (clips: Clip[]): Promise<Clip[]> => lastValueFrom(source('clips', () => clips).pipe(fitClips('fit', from, to), unwrap(), toArray()));
  const [out] = await run([{ id: 'a', frames: pixels }]);
  assert.equal(out!.frames.length, 12);
  await assert.rejects(run([{ id: 'm', frames: pixels, mask: new Uint8Array(32) }]), /clip m: resize clean clips, before occlusion/);
  await assert.rejects(run([{ id: 'f', frames: new Float32Array(32) }]), /clip f: only uint8 frames can be resized/);
});

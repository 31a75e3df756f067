/**
 * Frame operations that bring a dataset's clips to a model's shape: resize every frame (sharp,
 * Lanczos), crop the centre, truncate or pad to T frames (padding repeats the last frame), and
 * gray ↔ colour. Uint8 pixels only: float datasets (SST) are cut to size, not resampled.
 *
 * Must not know about tensors or any dataset.
 */
import sharp from 'sharp';
import type { Clip, ClipShape, Pixels } from '../../pipeline/frame-batch.ts';
import { mapAsync } from '../../pipeline/operators/map-async.ts';
import type { Stage, StageOptions } from '../../pipeline/stage.ts';

/** Frames `t` of a clip, truncated or padded by repeating the last to `frames`. */
export function fitFrames<P extends Pixels>(pixels: P, from: ClipShape, frames: number): P {
  const size = from.height * from.width * from.channels;
  if (frames === from.frames) return pixels;
  const out = new (pixels.constructor as new (n: number) => P)(frames * size);
  for (let t = 0; t < frames; t++) {
    const source = Math.min(t, from.frames - 1);
    out.set(pixels.subarray(source * size, (source + 1) * size) as never, t * size);
  }
  return out;
}

/**
 * One uint8 frame resized to `height × width` (and converted to `channels` 1 or 3): the largest
 * centred crop of the target's aspect ratio, then Lanczos resampling; colour to gray by Rec. 601
 * luma (0.299 R + 0.587 G + 0.114 B, as ffmpeg's gray conversion), gray to colour by copying.
 */
export async function resizeFrame(frame: Uint8Array, from: { height: number; width: number; channels: number }, to: { height: number; width: number; channels: number }): Promise<Uint8Array> {
  let pixels = frame;
  if (from.height !== to.height || from.width !== to.width) {
    const { data, info } = await sharp(frame, { raw: { width: from.width, height: from.height, channels: from.channels as 1 | 3 | 4 } })
      .resize(to.width, to.height, { fit: 'cover', position: 'centre', kernel: 'lanczos3' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    // sharp hands a one-band image back as sRGB with three equal bands: keep one.
    if (info.channels !== from.channels) pixels = Uint8Array.from({ length: to.height * to.width * from.channels }, (_, i) => pixels[Math.floor(i / from.channels) * info.channels + (i % from.channels)]!);
  }
  if (from.channels === to.channels) return pixels;
  const n = to.height * to.width;
  const out = new Uint8Array(n * to.channels);
  if (to.channels === 1) {
    for (let i = 0; i < n; i++) out[i] = Math.round(0.299 * pixels[i * from.channels]! + 0.587 * pixels[i * from.channels + 1]! + 0.114 * pixels[i * from.channels + 2]!);
  } else {
    for (let i = 0; i < n; i++) for (let c = 0; c < to.channels; c++) out[i * to.channels + c] = pixels[i * from.channels + Math.min(c, from.channels - 1)]!;
  }
  return out;
}

/** A clip's pixels in another shape: every frame resized, then truncated or padded to T. */
export async function fitClipPixels(pixels: Uint8Array, from: ClipShape, to: ClipShape): Promise<Uint8Array> {
  let out = pixels;
  if (from.height !== to.height || from.width !== to.width || from.channels !== to.channels) {
    const inSize = from.height * from.width * from.channels;
    const outSize = to.height * to.width * to.channels;
    out = new Uint8Array(from.frames * outSize);
    for (let t = 0; t < from.frames; t++) out.set(await resizeFrame(pixels.subarray(t * inSize, (t + 1) * inSize), from, to), t * outSize);
  }
  return fitFrames(out, { ...to, frames: from.frames }, to.frames);
}

/**
 * @example
 * clips.pipe(fitClips('fit-64', { frames: 30, height: 64, width: 64, channels: 3 }, { frames: 35, height: 32, width: 32, channels: 3 }))
 * @returns a stage giving every clean clip the target shape (uint8 frames; masks must come later).
 */
export function fitClips<C extends Clip>(name: string, from: ClipShape, to: ClipShape, options: StageOptions<C> = {}): Stage<C, C> {
  const same = from.frames === to.frames && from.height === to.height && from.width === to.width && from.channels === to.channels;
  return mapAsync(
    name,
    async (clip: C): Promise<C> => {
      if (same) return clip;
      if (!(clip.frames instanceof Uint8Array)) throw new Error(`clip ${clip.id}: only uint8 frames can be resized`);
      if (clip.mask) throw new Error(`clip ${clip.id}: resize clean clips, before occlusion`);
      return { ...clip, frames: await fitClipPixels(clip.frames, from, to) };
    },
    { describe: (clip: C) => ({ clip: clip.id }), ...options },
  );
}

/**
 * A user's own masks: a folder of image frames (PNG, JPEG, WebP; sorted by name) or a mask video,
 * white = occluded, black = visible (`--invert` swaps them). Frames are resized to the clip's size
 * (nearest neighbour, so masks stay binary) and thresholded at half intensity. Each clip takes T
 * consecutive mask frames from a random start (the mask sequence loops when it is shorter than T).
 * Images are read with sharp; a video needs `ffmpeg` on PATH.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import sharp from 'sharp';
import { lastValueFrom, toArray } from 'rxjs';
import { UsageError, oneLine } from '../../pipeline/errors.ts';
import { fromProcess } from '../../pipeline/operators/from-process.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { defineOcclusion, type MaskShape } from './process.ts';

const IMAGE = new Set(['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff']);

/** Grey levels of every frame of a folder of images, resized to H×W, frame after frame. */
async function imageFrames(dir: string, { height: H, width: W }: MaskShape): Promise<Uint8Array[]> {
  const files = readdirSync(dir)
    .filter((f) => IMAGE.has(extname(f).toLowerCase()))
    .sort();
  if (files.length === 0) throw new UsageError(`occlusion "mask-video": no mask images (png, jpg, webp, tif) in ${dir}`);
  return Promise.all(
    files.map(async (f) => {
      try {
        const { data } = await sharp(join(dir, f)).greyscale().resize(W, H, { fit: 'fill', kernel: 'nearest' }).raw().toBuffer({ resolveWithObject: true });
        return new Uint8Array(data.buffer, data.byteOffset, H * W);
      } catch (err) {
        throw new UsageError(`occlusion "mask-video": cannot read mask image ${join(dir, f)}: ${(err as Error).message}`);
      }
    }),
  );
}

/** Grey levels of every frame of a video, resized to H×W by ffmpeg (through the pipeline's `fromProcess`). */
async function videoFrames(path: string, { height: H, width: W }: MaskShape): Promise<Uint8Array[]> {
  const args = ['-v', 'error', '-i', path, '-vf', `scale=${W}:${H}:flags=neighbor`, '-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'gray', '-'];
  let chunks: Buffer[];
  try {
    chunks = await lastValueFrom(fromProcess('mask-video', 'ffmpeg', args, { chunkBytes: H * W }).pipe(unwrap(), toArray()));
  } catch (err) {
    const message = oneLine(err);
    if (message.includes('ENOENT')) throw new UsageError(`occlusion "mask-video": ${path} is a video and ffmpeg is not on PATH; install ffmpeg or give a folder of mask images`);
    throw new UsageError(`occlusion "mask-video": ffmpeg cannot read ${path}: ${message}`);
  }
  // A short last chunk is a truncated frame, not a mask.
  const frames = chunks.filter((c) => c.length === H * W);
  if (frames.length === 0) throw new UsageError(`occlusion "mask-video": ${path} has no frames`);
  return frames.map((c) => new Uint8Array(c.buffer, c.byteOffset, H * W));
}

export const maskVideo = defineOcclusion({
  name: 'mask-video',
  description: "your own masks: a folder of mask images or a mask video (white = occluded)",
  fill: 1,
  timeDependent: true,
  options: {
    path: { type: 'string', default: '', describe: 'folder of mask images (sorted by name) or a mask video' },
    invert: { type: 'boolean', default: false, describe: 'black = occluded instead of white' },
  },
  check(o) {
    if (!o.path) throw new UsageError('occlusion "mask-video": --path is required (a folder of mask images or a mask video)');
    if (!existsSync(o.path)) throw new UsageError(`occlusion "mask-video": --path ${o.path} does not exist`);
  },
  async prepare(o, shape) {
    let isDir: boolean;
    try {
      isDir = statSync(o.path).isDirectory();
    } catch {
      throw new UsageError(`occlusion "mask-video": --path ${o.path} does not exist`);
    }
    const grey = isDir ? await imageFrames(o.path, shape) : await videoFrames(o.path, shape);
    const size = shape.height * shape.width;
    const masks = grey.map((g) => {
      const m = new Uint8Array(size);
      for (let i = 0; i < size; i++) m[i] = (g[i]! >= 128) !== o.invert ? 0 : 1;
      return m;
    });
    return {
      draw(random) {
        const start = masks.length > shape.frames ? random.int(0, masks.length - shape.frames) : 0;
        const out = new Uint8Array(shape.frames * size);
        for (let t = 0; t < shape.frames; t++) out.set(masks[(start + t) % masks.length]!, t * size);
        return out;
      },
    };
  },
});

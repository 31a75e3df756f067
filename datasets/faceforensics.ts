/**
 * FaceForensics++ originals (method.md §6): the 1000 YouTube videos need the owners' access form,
 * so the source is the user's folder of videos (searched recursively: .mp4, .avi, .mkv, .mov,
 * .webm), for example `original_sequences/youtube/c23/videos/`. Each video gives its first
 * `clips-per-video` runs of T = 35 frames, decoded by ffmpeg at most 640 pixels wide; each clip is
 * cut to one square around the face found in its first frame (SSD MobileNet v1, weights inside the
 * npm package `@vladmandic/face-api`), enlarged by `margin`, or with `crop=centre` to the largest
 * centred square; then resized to 64×64×3.
 *
 * Split: the paper's seeded random 5/5/90 (val/test/train), by video so that clips of one video
 * never straddle splits.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { UsageError } from '../pipeline/errors.ts';
import type { FrameBatchSpec } from '../pipeline/frame-batch.ts';
import { resolveOptions } from '../pipeline/graph.ts';
import { expand } from '../pipeline/operators/expand.ts';
import { mapAsync } from '../pipeline/operators/map-async.ts';
import { source, type SourceOptions } from '../pipeline/operators/source.ts';
import type { Stream } from '../pipeline/stage.ts';
import { centreSquare, cropFrame, detectFace, squareAround } from '../stages/frames/face.ts';
import { resizeFrame } from '../stages/frames/fit.ts';
import { FrameReader, probeVideo } from '../stages/io/video.ts';
import { Random } from '../stages/random.ts';
import { rangeParts } from './parts.ts';
import type { DatasetClip, Split } from './synthetic.ts';

export const faceforensicsOptions = {
  split: { type: 'string', default: 'all', choices: ['all', 'train', 'val', 'test'], describe: 'which split' },
  frames: { type: 'number', default: 35, integer: true, min: 1, max: 10_000, describe: 'frames per clip (T)' },
  size: { type: 'number', default: 64, integer: true, min: 8, max: 1024, describe: 'crop height and width after resizing' },
  crop: { type: 'string', default: 'face', choices: ['face', 'centre'], describe: 'a square around the face of the first frame, or the centred square' },
  margin: { type: 'number', default: 1.3, min: 1, max: 4, describe: 'face crop side over the detected box side' },
  'min-confidence': { type: 'number', default: 0.5, min: 0.05, max: 1, describe: 'detector score a face needs' },
  'clips-per-video': { type: 'number', default: 1, integer: true, min: 1, max: 10_000, describe: 'clips taken from the start of each video, one after the other' },
  seed: { type: 'number', default: 1, integer: true, min: 0, describe: 'seed of the random split' },
  'videos-from': { type: 'number', default: 0, integer: true, min: 0, describe: "first video read, by its place among the split's videos (a part, as a worker takes it)" },
  'videos-until': { type: 'number', default: 0, integer: true, min: 0, describe: "video the read stops before, by its place among the split's videos (0: the end)" },
} as const;

const VIDEO = /\.(mp4|avi|mkv|mov|webm)$/i;
const DECODE_WIDTH = 640;

function videosUnder(folder: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(folder).sort()) {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) out.push(...videosUnder(path));
    else if (VIDEO.test(name)) out.push(path);
  }
  return out;
}

/** T decoded frames of a video (fewer at its end), at the decoding size. */
interface RawClip {
  readonly id: string;
  readonly path: string;
  readonly split: Split;
  readonly width: number;
  readonly height: number;
  readonly frames: readonly Uint8Array[];
}

/**
 * The read cut into parts of about `size` clips, as ranges of the split's videos
 * (`videos-from`, `videos-until`), for workers: the parts' clips, one part after the other, are
 * the whole read's.
 */
export async function faceforensicsParts(location: string, given: Readonly<Record<string, unknown>>, size: number): Promise<Array<Record<string, number>>> {
  const o = resolveOptions('dataset "faceforensics"', faceforensicsOptions, given);
  const count = sourceVideos(location).filter(({ video }) => o.split === 'all' || videoSplit(o.seed, video) === o.split).length;
  return rangeParts(['videos-from', 'videos-until'], o['videos-from'], Math.min(count, o['videos-until'] || Infinity), Math.max(1, Math.round(size / o['clips-per-video'])));
}

/** A source's videos in read order, each with its path and its name (relative to the source folder). */
function sourceVideos(location: string): Array<{ path: string; video: string }> {
  if (!existsSync(location)) throw new UsageError(`--source ${location}: no such file or folder`);
  if (!statSync(location).isDirectory()) return [{ path: location, video: location }];
  return videosUnder(location).map((path) => ({ path, video: relative(location, path) }));
}

/** The split of a video: the paper's seeded random 5/5/90 (val/test/train), by video. */
function videoSplit(seed: number, video: string): Split {
  const u = Random.fromKey('faceforensics-split', seed, video).uniform(0, 1);
  return u < 0.05 ? 'val' : u < 0.1 ? 'test' : 'train';
}

export function faceforensicsClips(location: string, given: Readonly<Record<string, unknown>>, stage: SourceOptions = {}): { spec: FrameBatchSpec; clips: Stream<DatasetClip> } {
  const o = resolveOptions('dataset "faceforensics"', faceforensicsOptions, given);
  const videos = sourceVideos(location);
  if (videos.length === 0) throw new UsageError(`--source ${location}: no videos (.mp4, .avi, .mkv, .mov, .webm) under it`);
  const T = o.frames;
  const S = o.size;
  const spec: FrameBatchSpec = { shape: { frames: T, height: S, width: S, channels: 3 }, pixelType: 'uint8', range: [0, 255] };

  const policy = { onError: stage.onError };
  // The chain: the videos → decoded in clips of T frames → each cropped (around its face) and resized.
  const files = source(
    'ff-videos',
    function* () {
      let place = 0;
      const until = o['videos-until'] || Infinity;
      for (const { path, video } of videos) {
        const split = videoSplit(o.seed, video);
        if (o.split !== 'all' && split !== o.split) continue;
        if (place >= until) return;
        if (place++ >= o['videos-from']) yield { path, video, split };
      }
    },
    { capacity: 1 },
  );
  const decoded = expand(
    'decode',
    async function* ({ path, video, split }: { path: string; video: string; split: Split }): AsyncGenerator<RawClip> {
      const info = probeVideo(path);
      // Decoded at most 640 wide (even sizes): enough for the detector and a 64-pixel crop, and bounded memory.
      const width = Math.min(info.width, DECODE_WIDTH) & ~1;
      const height = Math.max(2, Math.round((info.height * width) / info.width / 2) * 2);
      const reader = new FrameReader(path, width * height * 3, 'rgb24', { width, height });
      try {
        for (let k = 0; k < o['clips-per-video']; k++) {
          const frames: Uint8Array[] = [];
          for (let t = 0; t < T; t++) {
            const frame = await reader.next();
            if (!frame) break;
            frames.push(frame);
          }
          if (frames.length === 0) break; // the video is shorter than this clip
          yield { id: `${video}#${k}`, path, split, width, height, frames };
          if (frames.length < T) break;
        }
      } finally {
        reader.close();
      }
    },
    // A raw clip holds T full decoded frames: few in flight.
    { ...policy, capacity: 2, describe: ({ path }) => ({ file: path }) },
  );
  const cropped = mapAsync(
    'face-crop',
    async ({ id, path, split, width, height, frames: raw }: RawClip): Promise<DatasetClip> => {
      let square = centreSquare(height, width);
      if (o.crop === 'face') {
        const face = await detectFace(raw[0]!, height, width, o['min-confidence']);
        if (!face) throw new Error(`no face above confidence ${o['min-confidence']} in the clip's first frame (try --dataset-option crop=centre)`);
        square = squareAround(face, height, width, o.margin);
      }
      const frames = new Uint8Array(T * S * S * 3);
      for (let t = 0; t < T; t++) {
        // Short videos are padded by repeating their last frame.
        const frame = raw[Math.min(t, raw.length - 1)]!;
        frames.set(await resizeFrame(cropFrame(frame, width, 3, square), { height: square.size, width: square.size, channels: 3 }, { height: S, width: S, channels: 3 }), t * S * S * 3);
      }
      return { id, split, frames };
    },
    { ...policy, ordered: true, describe: ({ id, path }) => ({ clip: id, file: path }) },
  );
  const clips = files.pipe(decoded, cropped);
  return { spec, clips };
}

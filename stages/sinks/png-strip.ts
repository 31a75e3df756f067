/**
 * Pictures of clips: PNG strips with one row per version of a clip (observed, mask, inpainted,
 * truth, …) and one column per chosen frame, enlarged with nearest-neighbour so pixels stay
 * visible. Encoded by sharp; written atomically.
 */
import sharp from 'sharp';
import type { ClipShape, Pixels } from '../../pipeline/frame-batch.ts';
import { writeFileAtomic } from '../../pipeline/files.ts';

export interface StripOptions {
  /** Frame indices shown, in order. Default: up to 8 evenly spaced frames. */
  readonly frames?: readonly number[];
  /** Enlargement factor (integer ≥ 1). Default: so that a frame is at least 96 px tall. */
  readonly scale?: number;
  /** Pixels of background between frames and rows, before scaling. Default 1. */
  readonly gap?: number;
}

/** A row of a strip: pixels of one clip (T·H·W·C, channel-last) and the range they are in. */
export interface StripRow {
  readonly pixels: Pixels;
  readonly range: readonly [number, number];
}

/** A mask (T·H·W, 1 = visible) as a row: hidden pixels white, visible ones black. */
export function maskRow(mask: Uint8Array): StripRow {
  return { pixels: mask.map((v) => (v ? 0 : 255)), range: [0, 255] };
}

/** Evenly spaced frame indices, at most `count`. */
export function spreadFrames(frames: number, count = 8): number[] {
  if (frames <= count) return Array.from({ length: frames }, (_, i) => i);
  return Array.from({ length: count }, (_, i) => Math.round((i * (frames - 1)) / (count - 1)));
}

/** Draws rows of clips as one RGB image; returns PNG bytes. */
export async function stripPng(rows: readonly StripRow[], shape: ClipShape, options: StripOptions = {}): Promise<Buffer> {
  const { height: H, width: W, channels: C } = shape;
  const frames = options.frames ?? spreadFrames(shape.frames);
  const gap = options.gap ?? 1;
  const scale = options.scale ?? Math.max(1, Math.ceil(96 / H));
  const width = frames.length * (W + gap) - gap;
  const height = rows.length * (H + gap) - gap;
  const image = new Uint8Array(width * height * 3).fill(40);
  rows.forEach((row, r) => {
    const rowChannels = row.pixels.length / (shape.frames * H * W);
    if (rowChannels !== C && rowChannels !== 1) throw new RangeError(`strip row ${r}: ${row.pixels.length} values do not fit ${shape.frames}×${H}×${W}×${C}`);
    const [lo, hi] = row.range;
    frames.forEach((t, col) => {
      if (t < 0 || t >= shape.frames) throw new RangeError(`strip: frame ${t} outside 0…${shape.frames - 1}`);
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const src = ((t * H + y) * W + x) * rowChannels;
          const dst = ((r * (H + gap) + y) * width + col * (W + gap) + x) * 3;
          for (let c = 0; c < 3; c++) {
            const v = row.pixels[src + (rowChannels === 1 ? 0 : c)]!;
            image[dst + c] = Math.max(0, Math.min(255, Math.round(((v - lo) / (hi - lo)) * 255)));
          }
        }
      }
    });
  });
  return sharp(image, { raw: { width, height, channels: 3 } })
    .resize(width * scale, height * scale, { kernel: 'nearest' })
    .png()
    .toBuffer();
}

/** {@link stripPng} written to `path` (atomically). */
export async function writeStrip(path: string, rows: readonly StripRow[], shape: ClipShape, options?: StripOptions): Promise<void> {
  await writeFileAtomic(path, await stripPng(rows, shape, options));
}

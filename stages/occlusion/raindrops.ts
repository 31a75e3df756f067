/**
 * Raindrops (c = 1): a fixed number of white vertical streaks, each with its own column, length,
 * start and downward speed, constant width; a drop that has left the bottom re-enters at the top.
 * Masks are correlated in time. Defaults from method.md §5 (the authors' lab code).
 */
import type { ParamValues } from '../../pipeline/graph.ts';
import type { Random } from '../random.ts';
import { defineOcclusion, type MaskShape } from './process.ts';

const options = {
  drops: { type: 'number', default: 30, integer: true, min: 1, max: 10_000, describe: 'number of drops' },
  width: { type: 'number', default: 1, integer: true, min: 1, max: 64, describe: 'drop width in pixels at 64 px frame width (scaled with the width)' },
  length: { type: 'number', default: 1, min: 0.01, max: 1, describe: 'longest drop, as a fraction of the frame height (lengths are U(0, length)·H)' },
  speed: { type: 'number', default: 0.07, min: 0.001, max: 1, describe: 'mean downward speed, fraction of the frame height per frame (each drop: U(0.5, 1.5) × this)' },
} as const;

export type RaindropOptions = ParamValues<typeof options>;

/** One drop: column `x` (left edge), `width`, `length` and `speed` in pixels, `start` = bottom tip at t = 0. */
export interface Drop {
  readonly x: number;
  readonly width: number;
  readonly length: number;
  readonly speed: number;
  readonly start: number;
}

/**
 * The drops of one clip. A drop's bottom tip is at row (start + t·speed) mod (H + length) in
 * frame t and covers the `length` rows above it that lie inside the frame: it leaves at the bottom
 * and re-enters at the top.
 */
export function planRaindrops(shape: MaskShape, o: RaindropOptions, random: Random): Drop[] {
  const { height: H, width: W } = shape;
  const width = Math.min(W, Math.max(1, Math.round((o.width * W) / 64)));
  return Array.from({ length: o.drops }, () => {
    const length = Math.max(1, Math.round(random.uniform(0, o.length) * H));
    return {
      x: random.int(0, W - width),
      width,
      length,
      speed: Math.max(1, Math.round(random.uniform(0.5, 1.5) * o.speed * H)),
      start: random.int(0, H + length - 1),
    };
  });
}

/** Hides the rows of `drop` in frame `t` of `mask` (T·H·W, 1 = visible). */
export function drawDrop(mask: Uint8Array, shape: MaskShape, drop: Drop, t: number): void {
  const { height: H, width: W } = shape;
  const bottom = (drop.start + t * drop.speed) % (H + drop.length);
  for (let y = Math.max(0, bottom - drop.length); y < Math.min(H, bottom); y++) {
    const row = (t * H + y) * W;
    mask.fill(0, row + drop.x, row + drop.x + drop.width);
  }
}

export const raindrops = defineOcclusion({
  name: 'raindrops',
  description: 'white vertical drops falling at their own speeds, re-entering at the top',
  fill: 1,
  timeDependent: true,
  options,
  prepare: (o, shape) => ({
    draw(random) {
      const mask = new Uint8Array(shape.frames * shape.height * shape.width).fill(1);
      const drops = planRaindrops(shape, o, random);
      for (let t = 0; t < shape.frames; t++) for (const drop of drops) drawDrop(mask, shape, drop, t);
      return mask;
    },
  }),
});

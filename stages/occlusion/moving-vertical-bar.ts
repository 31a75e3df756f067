/**
 * Moving-Vertical-Bar (c = 1): one full-height white bar of random width, starting at a random
 * column and moving at a constant speed towards the centre of the frame, wrapping around the
 * edges. Defaults from method.md §5: width U(0.1, 0.5)·W, speed up to 0.05·W per frame.
 */
import type { ParamValues } from '../../pipeline/graph.ts';
import { UsageError } from '../../pipeline/errors.ts';
import type { Random } from '../random.ts';
import { defineOcclusion, type MaskShape } from './process.ts';

const options = {
  'min-width': { type: 'number', default: 0.1, min: 0.01, max: 1, describe: 'narrowest bar, fraction of the frame width' },
  'max-width': { type: 'number', default: 0.5, min: 0.01, max: 1, describe: 'widest bar, fraction of the frame width' },
  'max-speed': { type: 'number', default: 0.05, min: 0, max: 1, describe: 'fastest bar, fraction of the frame width per frame (at least 1 px per frame)' },
} as const;

export type BarOptions = ParamValues<typeof options>;

/** A bar: left column at t = 0, width in pixels, signed speed in pixels per frame. */
export interface Bar {
  readonly start: number;
  readonly width: number;
  readonly speed: number;
}

export function planBar(shape: MaskShape, o: BarOptions, random: Random): Bar {
  const W = shape.width;
  const width = Math.min(W, Math.max(1, Math.round(random.uniform(o['min-width'], o['max-width']) * W)));
  const start = random.int(0, W - 1);
  const magnitude = random.int(1, Math.max(1, Math.round(o['max-speed'] * W)));
  // Towards the centre: a bar whose middle is left of the centre moves right.
  const direction = start + width / 2 < W / 2 ? 1 : -1;
  return { start, width, speed: direction * magnitude };
}

/** Left column of the bar in frame t (the bar covers `width` columns from there, wrapping). */
export function barLeft(bar: Bar, W: number, t: number): number {
  return (((bar.start + t * bar.speed) % W) + W) % W;
}

export const movingVerticalBar = defineOcclusion({
  name: 'moving-vertical-bar',
  description: 'one full-height white bar moving sideways at constant speed, wrapping around',
  fill: 1,
  timeDependent: true,
  options,
  check(o) {
    if (o['min-width'] > o['max-width']) {
      throw new UsageError(`occlusion "moving-vertical-bar": --min-width (${o['min-width']}) must not exceed --max-width (${o['max-width']})`);
    }
  },
  prepare: (o, shape) => {
    const { frames: T, height: H, width: W } = shape;
    return {
      draw(random) {
        const mask = new Uint8Array(T * H * W).fill(1);
        const bar = planBar(shape, o, random);
        for (let t = 0; t < T; t++) {
          const left = barLeft(bar, W, t);
          for (let y = 0; y < H; y++) {
            const row = (t * H + y) * W;
            for (let k = 0; k < bar.width; k++) mask[row + ((left + k) % W)] = 0;
          }
        }
        return mask;
      },
    };
  },
});

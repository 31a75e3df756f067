/**
 * Remove-Pixel (c = 0): every pixel (all channels together) hidden independently with probability
 * p, drawn anew in every frame; not correlated in time. Default p = 0.6 (method.md §5).
 */
import { defineOcclusion } from './process.ts';

export const removePixel = defineOcclusion({
  name: 'remove-pixel',
  description: 'each pixel hidden (black) with probability p, redrawn every frame',
  fill: 0,
  timeDependent: false,
  options: {
    p: { type: 'number', default: 0.6, min: 0, max: 1, describe: 'probability that a pixel is hidden' },
  },
  prepare: (o, shape) => ({
    draw(random) {
      const mask = new Uint8Array(shape.frames * shape.height * shape.width);
      for (let i = 0; i < mask.length; i++) mask[i] = random.uniform() < o.p ? 0 : 1;
      return mask;
    },
  }),
});

/**
 * Clouds (c = 1), the SST experiment's occlusion: hidden where a cloud's liquid water path (LWP)
 * exceeds a threshold.
 * - With `--lwp FILE.npy` or a URL of it, downloaded once into the cache (the large-eddy simulation of figshare DOI 10.6084/m9.figshare.9929798,
 *   an array of shape (steps, height, width); the published array is in kg/m², as the authors'
 *   config thresholds it at 0.070 for 70 g/m²): a random start step, then every `step`-th
 *   simulation step per frame, a random crop of the clip's size (nearest-neighbour resampling when
 *   the field is smaller), hidden where LWP > `threshold` in g/m² (method.md §5: 55–80, 70 for
 *   training), whatever the file's units: `units=auto` reads them from the values (an LWP above
 *   10 can only be g/m²; a field whose maximum is a few units is kg/m²).
 * - Without it: a procedural field so that the experiment runs on the embedded data too: fractal
 *   value noise advected by a constant wind and slowly changing, thresholded so that a `coverage`
 *   fraction of the clip is hidden.
 */
import type { ParamValues } from '../../pipeline/graph.ts';
import { UsageError } from '../../pipeline/errors.ts';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { NpyFile } from '../decode/npy.ts';
import { defaultCache, fetchToCache } from '../io/fetch.ts';
import type { Random } from '../random.ts';
import { defineOcclusion, type MaskDrawer, type MaskShape } from './process.ts';

const options = {
  lwp: { type: 'string', default: '', describe: 'liquid-water-path .npy array (steps × height × width, g/m²): a path, or a URL downloaded once into the cache; empty: procedural clouds' },
  threshold: { type: 'number', default: 70, min: 0, max: 10_000, describe: 'LWP above which a pixel is cloudy, g/m² (with --lwp), whatever the units of the file' },
  units: { type: 'string', default: 'auto', choices: ['auto', 'g/m2', 'kg/m2'] as const, describe: "the --lwp array's units; auto: kg/m² when its largest value is at most 10, else g/m²" },
  step: { type: 'number', default: 10, integer: true, min: 1, max: 100_000, describe: 'simulation steps between frames (with --lwp)' },
  coverage: { type: 'number', default: 0.4, min: 0.01, max: 0.99, describe: 'fraction of the clip under cloud (procedural)' },
  scale: { type: 'number', default: 0.5, min: 0.02, max: 4, describe: 'size of the largest cloud features, fraction of the frame width (procedural)' },
  wind: { type: 'number', default: 0.03, min: 0, max: 1, describe: 'drift per frame, fraction of the frame width (procedural)' },
  evolve: { type: 'number', default: 0.05, min: 0, max: 1, describe: 'change of the cloud shapes per frame (procedural)' },
} as const;

export type CloudOptions = ParamValues<typeof options>;

const OCTAVES = 4;

/** Smooth 3D value noise in [0, 1) on a 256-periodic lattice, its lattice drawn from `random`. */
function valueNoise(random: Random): (x: number, y: number, z: number) => number {
  const perm = Uint8Array.from({ length: 256 }, (_, i) => i);
  for (let i = 255; i > 0; i--) {
    const j = random.int(0, i);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const values = Float64Array.from({ length: 256 }, () => random.uniform());
  const at = (x: number, y: number, z: number): number => values[perm[(perm[(perm[x & 255]! + y) & 255]! + z) & 255]!]!;
  const smooth = (t: number): number => t * t * (3 - 2 * t);
  const lerp = (a: number, b: number, t: number): number => a + (b - a) * t;
  return (x, y, z) => {
    const [x0, y0, z0] = [Math.floor(x), Math.floor(y), Math.floor(z)];
    const [u, v, w] = [smooth(x - x0), smooth(y - y0), smooth(z - z0)];
    const plane = (zz: number): number =>
      lerp(lerp(at(x0, y0, zz), at(x0 + 1, y0, zz), u), lerp(at(x0, y0 + 1, zz), at(x0 + 1, y0 + 1, zz), u), v);
    return lerp(plane(z0), plane(z0 + 1), w);
  };
}

function proceduralDrawer(o: CloudOptions, { frames: T, height: H, width: W }: MaskShape): MaskDrawer {
  return {
    draw(random) {
      const noise = valueNoise(random);
      const angle = random.uniform(0, 2 * Math.PI);
      const speed = random.uniform(0.5, 1) * o.wind * W;
      const [vx, vy] = [Math.cos(angle) * speed, Math.sin(angle) * speed];
      const [ox, oy, oz] = [random.uniform(0, 256), random.uniform(0, 256), random.uniform(0, 256)];
      const period = o.scale * W;
      const field = new Float64Array(T * H * W);
      for (let t = 0; t < T; t++) {
        for (let y = 0; y < H; y++) {
          for (let x = 0; x < W; x++) {
            const [px, py, pz] = [ox + (x - vx * t) / period, oy + (y - vy * t) / period, oz + o.evolve * t];
            let sum = 0;
            for (let k = 0, f = 1, a = 1; k < OCTAVES; k++, f *= 2, a /= 2) sum += a * noise(px * f, py * f, pz * f);
            field[(t * H + y) * W + x] = sum;
          }
        }
      }
      // One threshold for the whole clip, hiding `coverage` of it: clouds grow and shrink over time.
      const sorted = field.slice().sort();
      const threshold = sorted[Math.min(sorted.length - 1, Math.floor((1 - o.coverage) * sorted.length))]!;
      const mask = new Uint8Array(T * H * W);
      for (let i = 0; i < mask.length; i++) mask[i] = field[i]! >= threshold ? 0 : 1;
      return mask;
    },
  };
}

/** Where a clip's frames come from in the LWP array. */
export interface LwpWindow {
  readonly start: number;
  readonly top: number;
  readonly left: number;
}

function lwpDrawer(o: CloudOptions, shape: MaskShape): MaskDrawer & { window(random: Random): LwpWindow } {
  const file = (() => {
    try {
      return new NpyFile(o.lwp);
    } catch (err) {
      throw new UsageError(`occlusion "clouds": --lwp ${o.lwp}: ${(err as Error).message.replace(`${o.lwp}: `, '')}`);
    }
  })();
  const [steps, fh, fw] = file.header.shape;
  if (file.header.shape.length !== 3) throw new UsageError(`occlusion "clouds": --lwp ${o.lwp} has shape (${file.header.shape.join(', ')}), expected (steps, height, width)`);
  const span = 1 + o.step * (shape.frames - 1);
  if (steps! < span) throw new UsageError(`occlusion "clouds": --lwp ${o.lwp} has ${steps} steps, ${shape.frames} frames every ${o.step} steps need ${span}`);
  const { frames: T, height: H, width: W } = shape;
  const crop = fh! >= H && fw! >= W;
  const units = o.units === 'auto' ? guessUnits(file, steps!, fh! * fw!) : o.units;
  // The threshold is in g/m²; the comparison is in the file's units.
  const threshold = units === 'kg/m2' ? o.threshold / 1000 : o.threshold;
  const window = (random: Random): LwpWindow => ({
    start: random.int(0, steps! - span),
    top: crop ? random.int(0, fh! - H) : 0,
    left: crop ? random.int(0, fw! - W) : 0,
  });
  return {
    window,
    note: `clouds: ${o.lwp} read as ${units === 'kg/m2' ? 'kg/m²' : 'g/m²'}${o.units === 'auto' ? ' (from its values; units= overrides)' : ''}, hidden where LWP > ${o.threshold} g/m²`,
    draw(random) {
      const w = window(random);
      const mask = new Uint8Array(T * H * W);
      for (let t = 0; t < T; t++) {
        const base = (w.start + t * o.step) * fh! * fw!;
        const rows = Array.from({ length: H }, (_, y) => (crop ? w.top + y : Math.floor((y * fh!) / H)));
        const read = file.readRanges(rows.map((sy) => (crop ? { start: base + sy * fw! + w.left, length: W } : { start: base + sy * fw!, length: fw! })));
        read.forEach((values, y) => {
          for (let x = 0; x < W; x++) {
            const v = crop ? values[x]! : values[Math.floor((x * fw!) / W)]!;
            mask[(t * H + y) * W + x] = v > threshold ? 0 : 1;
          }
        });
      }
      return mask;
    },
  };
}

/**
 * The units of an LWP field from its values: the largest of up to 16 fields spread over the
 * array. Liquid water paths of real clouds reach hundreds of g/m², i.e. tenths of a kg/m².
 */
function guessUnits(file: NpyFile, steps: number, fieldSize: number): 'g/m2' | 'kg/m2' {
  let most = -Infinity;
  const picks = Math.min(16, steps);
  for (let k = 0; k < picks; k++) {
    const step = Math.floor((k * steps) / picks);
    const [values] = file.readRanges([{ start: step * fieldSize, length: fieldSize }]);
    for (const v of values!) if (v > most) most = v;
  }
  return most > 10 ? 'g/m2' : 'kg/m2';
}

/** The window a clip's mask is cut from (for tests and reports); the same draws as the mask itself. */
export function lwpWindow(o: CloudOptions, shape: MaskShape, random: Random): LwpWindow {
  return lwpDrawer(o, shape).window(random);
}

export const clouds = defineOcclusion({
  name: 'clouds',
  description: 'thresholded cloud fields: a liquid-water-path array (--lwp) or procedural drifting clouds',
  fill: 1,
  timeDependent: true,
  options,
  check(o) {
    if (o.lwp && !/^https?:\/\//.test(o.lwp) && !existsSync(o.lwp)) throw new UsageError(`occlusion "clouds": --lwp ${o.lwp}: no such file`);
  },
  prepare: async (o, shape) => {
    if (!o.lwp) return proceduralDrawer(o, shape);
    // A URL (the .npy of figshare DOI 10.6084/m9.figshare.9929798) is downloaded once, resumably, into the cache.
    if (!/^https?:\/\//.test(o.lwp)) return lwpDrawer(o, shape);
    const name = `lwp-${createHash('sha256').update(o.lwp).digest('hex').slice(0, 16)}.npy`;
    return lwpDrawer({ ...o, lwp: await fetchToCache(o.lwp, { cache: defaultCache(), name }) }, shape);
  },
});

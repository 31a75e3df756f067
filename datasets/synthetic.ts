/**
 * The embedded default dataset, generated in process: textured shapes (discs, squares, triangles)
 * that move, bounce off the borders and rotate over a drifting textured background. Every clip is
 * a pure function of (seed, clip index), any size, grey or colour. Filling a hole in it takes both
 * motion (where the shape went) and appearance (its stripes, checks or gradient), not a flat colour.
 *
 * Splits follow the paper's random 90/5/5 (train/validation/test), drawn per clip from the seed.
 */
import type { PhysicalScale } from '../stages/eval/metrics.ts';
import type { Clip, FrameBatchSpec } from '../pipeline/frame-batch.ts';
import { UsageError } from '../pipeline/errors.ts';
import { resolveOptions, type ParamValues } from '../pipeline/graph.ts';
import { source } from '../pipeline/operators/source.ts';
import type { Stream } from '../pipeline/stage.ts';
import { Random } from '../stages/random.ts';

export type Split = 'train' | 'val' | 'test';

/** A clip of a dataset, with the split it belongs to. */
export interface DatasetClip extends Clip {
  readonly split: Split;
  /** The data's physical unit per unit of its pixel values, when it has one (SST: °C per normalised unit, 3·std of the sequence). */
  readonly physical?: PhysicalScale;
}

export const syntheticOptions = {
  clips: { type: 'number', default: 64, integer: true, min: 1, max: 10_000_000, describe: 'number of clips generated (all splits together)' },
  frames: { type: 'number', default: 16, integer: true, min: 1, max: 10_000, describe: 'frames per clip (T)' },
  size: { type: 'number', default: 32, integer: true, min: 8, max: 4096, describe: 'frame height and width in pixels' },
  channels: { type: 'number', default: 1, integer: true, min: 1, max: 3, describe: '1 (grey) or 3 (colour)' },
  shapes: { type: 'number', default: 3, integer: true, min: 0, max: 32, describe: 'moving shapes per clip' },
  seed: { type: 'number', default: 1, integer: true, min: 0, max: 2 ** 31 - 1, describe: 'seed of the whole set' },
  split: { type: 'string', default: 'all', choices: ['all', 'train', 'val', 'test'], describe: 'which split to stream' },
  from: { type: 'number', default: 0, integer: true, min: 0, describe: 'first clip index streamed (a part of the set, as a worker takes it)' },
  until: { type: 'number', default: 0, integer: true, min: 0, describe: 'clip index the stream stops before (0: the end of the set)' },
} as const;

export type SyntheticOptions = ParamValues<typeof syntheticOptions>;

export function checkSyntheticOptions(given: Readonly<Record<string, unknown>>): SyntheticOptions {
  const o = resolveOptions('dataset "synthetic"', syntheticOptions, given);
  if (o.channels === 2) throw new UsageError('dataset "synthetic": --channels must be 1 (grey) or 3 (colour), got 2');
  return o;
}

/** The frame-batch spec of the set's clips (uint8 in [0, 255]). */
export function syntheticSpec(o: Pick<SyntheticOptions, 'frames' | 'size' | 'channels'>): FrameBatchSpec {
  return { shape: { frames: o.frames, height: o.size, width: o.size, channels: o.channels }, pixelType: 'uint8', range: [0, 255] };
}

/** The split of clip `index`: 90 % train, 5 % validation, 5 % test. */
export function syntheticSplit(seed: number, index: number): Split {
  const u = Random.fromKey('synthetic-split', seed, index).uniform();
  return u < 0.05 ? 'test' : u < 0.1 ? 'val' : 'train';
}

type Colour = readonly [number, number, number];
type Texture = (u: number, v: number) => number;

interface Shape {
  kind: 'disc' | 'square' | 'triangle';
  x: number;
  y: number;
  vx: number;
  vy: number;
  radius: number;
  angle: number;
  spin: number;
  colours: readonly [Colour, Colour];
  texture: Texture;
}

function colour(random: Random): Colour {
  return [random.uniform(0.05, 1), random.uniform(0.05, 1), random.uniform(0.05, 1)];
}

/** A pattern in [0, 1] over shape-local coordinates in [-1, 1]: stripes, checks or a gradient. */
function texture(random: Random): Texture {
  const kind = random.int(0, 2);
  const f = random.uniform(1.5, 4);
  if (kind === 0) return (u) => (Math.sin(f * Math.PI * u) > 0 ? 1 : 0);
  if (kind === 1) return (u, v) => ((Math.floor(f * (u + 1)) + Math.floor(f * (v + 1))) % 2 === 0 ? 1 : 0);
  return (u, v) => (u + v + 2) / 4;
}

function inside(shape: Shape, u: number, v: number): boolean {
  if (shape.kind === 'disc') return u * u + v * v <= 1;
  if (shape.kind === 'square') return Math.abs(u) <= 0.8 && Math.abs(v) <= 0.8;
  // Equilateral triangle pointing up in local coordinates.
  return v >= -0.5 && v <= 1 && Math.abs(u) <= (1 - v) / Math.sqrt(3);
}

/** Generates clip `index` of the set: uint8 pixels T·H·W·C in frame-major, channel-last order. */
export function syntheticClip(o: Pick<SyntheticOptions, 'frames' | 'size' | 'channels' | 'shapes' | 'seed'>, index: number): DatasetClip {
  const random = Random.fromKey('synthetic-clip', o.seed, index);
  const { frames: T, size: S, channels: C } = o;
  // Background: two drifting plane waves mixed between two colours.
  const bg: readonly [Colour, Colour] = [colour(random), colour(random)];
  const waves = [0, 1].map(() => {
    const angle = random.uniform(0, 2 * Math.PI);
    const k = random.uniform(1, 3) * ((2 * Math.PI) / S);
    return { kx: Math.cos(angle) * k, ky: Math.sin(angle) * k, phase: random.uniform(0, 2 * Math.PI), drift: random.uniform(0.05, 0.2) };
  });
  const shapes: Shape[] = Array.from({ length: o.shapes }, () => {
    const radius = random.uniform(0.12, 0.25) * S;
    const speed = random.uniform(0.01, 0.04) * S;
    const heading = random.uniform(0, 2 * Math.PI);
    return {
      kind: (['disc', 'square', 'triangle'] as const)[random.int(0, 2)]!,
      x: random.uniform(radius, S - radius),
      y: random.uniform(radius, S - radius),
      vx: Math.cos(heading) * speed,
      vy: Math.sin(heading) * speed,
      radius,
      angle: random.uniform(0, 2 * Math.PI),
      spin: random.uniform(-0.15, 0.15),
      colours: [colour(random), colour(random)],
      texture: texture(random),
    };
  });

  const frames = new Uint8Array(T * S * S * C);
  const rgb = [0, 0, 0];
  for (let t = 0; t < T; t++) {
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        let w = 0;
        for (const wave of waves) w += Math.sin(wave.kx * x + wave.ky * y + wave.phase + wave.drift * t);
        const mix = (w + 2) / 4;
        for (let c = 0; c < 3; c++) rgb[c] = bg[0][c]! * (1 - mix) + bg[1][c]! * mix;
        // Later shapes are drawn over earlier ones.
        for (const s of shapes) {
          const dx = (x - s.x) / s.radius;
          const dy = (y - s.y) / s.radius;
          const [cos, sin] = [Math.cos(s.angle), Math.sin(s.angle)];
          const u = cos * dx + sin * dy;
          const v = -sin * dx + cos * dy;
          if (!inside(s, u, v)) continue;
          const p = s.texture(u, v);
          for (let c = 0; c < 3; c++) rgb[c] = s.colours[0][c]! * (1 - p) + s.colours[1][c]! * p;
        }
        const at = ((t * S + y) * S + x) * C;
        if (C === 1) frames[at] = Math.round(255 * (0.299 * rgb[0]! + 0.587 * rgb[1]! + 0.114 * rgb[2]!));
        else for (let c = 0; c < C; c++) frames[at + c] = Math.round(255 * rgb[c]!);
      }
    }
    for (const s of shapes) {
      s.x += s.vx;
      s.y += s.vy;
      if (s.x < s.radius || s.x > S - s.radius) s.vx = -s.vx;
      if (s.y < s.radius || s.y > S - s.radius) s.vy = -s.vy;
      s.angle += s.spin;
    }
  }
  return { id: `synthetic-${o.seed}-${index}`, frames, split: syntheticSplit(o.seed, index) };
}

/**
 * The set as a source stage: clips generated one at a time, against credit.
 * @example syntheticSource(checkSyntheticOptions({ clips: 100, split: 'train' }))
 */
export function syntheticSource(o: SyntheticOptions, options: { capacity?: number } = {}): Stream<DatasetClip> {
  return source(
    'synthetic',
    function* () {
      for (let i = o.from; i < (o.until > 0 ? Math.min(o.until, o.clips) : o.clips); i++) {
        if (o.split !== 'all' && syntheticSplit(o.seed, i) !== o.split) continue;
        yield syntheticClip(o, i);
      }
    },
    options,
  );
}

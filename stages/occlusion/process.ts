/**
 * What an occlusion process is, and what every process shares: observed pixels
 * y = x·m + c·(1 − m), masks keyed by (run seed, clip id, process, options), and the sampler of
 * fresh masks m̂ that the training step re-occludes its generations with.
 *
 * A mask is one byte per pixel of a clip, T·H·W values in frame-major order, 1 = visible,
 * 0 = occluded (all channels of a pixel together), as in the frame batch's `mask` column.
 *
 * Must not touch tensors or files; processes that read files do it in `prepare`.
 */
import type { ClipShape, Pixels } from '../../pipeline/frame-batch.ts';
import { resolveOptions, type ParamSpecs, type ParamValues } from '../../pipeline/graph.ts';
import { Random, type RandomState } from '../random.ts';

/** The part of a clip's shape a mask depends on. */
export type MaskShape = Pick<ClipShape, 'frames' | 'height' | 'width'>;

/** Draws masks of one shape; `draw` is a pure function of the generator's state. */
export interface MaskDrawer {
  /** One clip's mask, T·H·W bytes, 1 = visible. */
  draw(random: Random): Uint8Array;
  /** What the process assumed about its input (a field's units, say), for the run's first lines. */
  readonly note?: string;
}

export interface OcclusionProcess<P extends ParamSpecs = ParamSpecs> {
  /** Lower-case name used on the command line and stored in the batch's `process` column. */
  readonly name: string;
  readonly description: string;
  /**
   * Fill value c of hidden pixels, in the unit range: 1 = white (the top of the data's range,
   * +1 inside the model), 0 = black (the bottom of the range).
   */
  readonly fill: 0 | 1;
  /** Whether masks are correlated in time (the sequence discriminator then sees frame differences). */
  readonly timeDependent: boolean;
  /** Typed options with the defaults of method.md §5 and their ranges. */
  readonly options: P;
  /**
   * Checks what can be checked of the options before anything runs (ranges that depend on each
   * other, files that must exist), so that a graph refuses them when it is built.
   * @throws UsageError naming the option.
   */
  check?(options: ParamValues<P>): void;
  /** Makes the drawer for one mask shape; may load files (a user's mask frames, a cloud field). */
  prepare(options: ParamValues<P>, shape: MaskShape): MaskDrawer | Promise<MaskDrawer>;
}

export function defineOcclusion<P extends ParamSpecs>(process: OcclusionProcess<P>): OcclusionProcess<P> {
  return process;
}

/** Checks options against the process's specs (defaults filled); a bad one is a one-line UsageError naming it. */
export function occlusionOptions<P extends ParamSpecs>(process: OcclusionProcess<P>, given: Readonly<Record<string, unknown>>): ParamValues<P> {
  const options = resolveOptions(`occlusion "${process.name}"`, process.options, given);
  process.check?.(options);
  return options;
}

/** c in the data's own range: the top of `range` for white, the bottom for black. */
export function fillValue(process: Pick<OcclusionProcess, 'fill'>, range: readonly [number, number]): number {
  return process.fill === 1 ? range[1] : range[0];
}

/** The generator of the observed mask of one clip: a pure function of what it is keyed by. */
export function clipRandom(runSeed: number, clipId: string, process: string, options: Readonly<Record<string, unknown>>): Random {
  return Random.fromKey('observed-mask', runSeed, clipId, process, options);
}

/**
 * y = x·m + c·(1 − m) for a clip of `channels` channels, into a new array of the same type:
 * visible pixels are copied bit for bit, hidden ones (every channel) get exactly `c`.
 */
export function applyMask<P extends Pixels>(frames: P, mask: Uint8Array, channels: number, c: number): P {
  if (frames.length !== mask.length * channels) {
    throw new RangeError(`mask of ${mask.length} pixels does not fit ${frames.length} values of ${channels} channel(s)`);
  }
  const out = frames.slice() as P;
  for (let p = 0; p < mask.length; p++) {
    if (mask[p] === 0) out.fill(c, p * channels, (p + 1) * channels);
  }
  return out;
}

/** Fraction of hidden pixels of a mask. */
export function occludedFraction(mask: Uint8Array): number {
  let hidden = 0;
  for (let p = 0; p < mask.length; p++) hidden += mask[p] === 0 ? 1 : 0;
  return mask.length === 0 ? 0 : hidden / mask.length;
}

/**
 * Fresh masks m̂ for re-occluding generations, from a generator independent of the observed
 * masks'. Its state goes into checkpoints, so a resumed run draws the same masks.
 *
 * @example
 * const sampler = new MaskSampler(drawer, shape, Random.fromKey(seed, 'fresh-masks'));
 * const masks = sampler.sample(batchSize); // batchSize·T·H·W bytes
 */
export class MaskSampler {
  constructor(
    private readonly drawer: MaskDrawer,
    readonly shape: MaskShape,
    private random: Random,
  ) {}

  /** `count` masks, one after the other in one buffer (B·T·H·W bytes, 1 = visible). */
  sample(count: number): Uint8Array {
    const size = this.shape.frames * this.shape.height * this.shape.width;
    const out = new Uint8Array(count * size);
    for (let i = 0; i < count; i++) {
      // Each mask gets its own generator forked from the sampler's, so a drawer that consumes a
      // variable number of draws cannot shift the masks after it.
      const own = this.random.fork(String(i));
      out.set(this.drawer.draw(own), i * size);
      this.random = this.random.fork('next');
    }
    return out;
  }

  get state(): RandomState {
    return this.random.state;
  }

  set state(state: RandomState) {
    this.random = Random.fromState(state);
  }
}

/**
 * The held-out clips a training run is scored on: observed clips (with their masks and clean
 * pixels, as the occlusion stage leaves them) read from a chain, chosen, and turned into floats in
 * [0, 1]: every clip, streamed (the paper scores the whole test split), or a chosen few held in
 * memory. With a seed the choice is a seeded uniform sample of the whole stream (files are often in
 * order: KTH's first test clips are all boxing, SST's all January); without one, its first clips.
 */
import type { FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import type { ObservedClip } from '../occlusion/occlude.ts';
import { pull } from '../../pipeline/operators/pull.ts';
import type { Stream } from '../../pipeline/stage.ts';
import { reservoirSample } from '../batch/sample.ts';
import { Random } from '../random.ts';
import { toUnit, type HeldOutClip } from './evaluate.ts';
import type { PhysicalScale } from './metrics.ts';

export interface HeldOutOptions {
  /** How many clips; 0: every clip of the stream, read as a stream when scored. */
  readonly count: number;
  /** Seed of a uniform sample of the whole stream; absent: the first `count` clips. */
  readonly seed?: number;
  readonly log?: (line: string) => void;
}

/** An observed clip as the scorer takes it: floats in [0, 1], with its physical scale if the data has a unit. */
export function heldOutClip(clip: ObservedClip & { readonly physical?: PhysicalScale }, spec: FrameBatchSpec): HeldOutClip {
  const [lo, hi] = spec.range;
  // A physical scale is per unit of the data's range; the metrics see [0, 1], a range (hi − lo) times narrower.
  const physical = clip.physical && { unit: clip.physical.unit, perUnit: clip.physical.perUnit * (hi - lo) };
  return { id: clip.id, mask: clip.mask, observed: toUnit(clip.frames, spec.range), truth: toUnit(clip.truth, spec.range), ...(physical && { physical }) };
}

/** Every held-out clip of the stream, converted as it is read (a new read of the chain per call). */
export async function* heldOutStream(observed: Stream<ObservedClip>, spec: FrameBatchSpec): AsyncGenerator<HeldOutClip> {
  for await (const clip of pull(observed)) yield heldOutClip(clip, spec);
}

/**
 * @example
 * const { clips, of } = await heldOutClips(test.pipe(fitClips(…), occlude(…)), spec, { count: 64, seed: 1 });
 * @param observed occluded clips: `frames` observed, `mask`, and `truth` the clean pixels.
 * @returns the chosen clips in [0, 1], in stream order, and how many the stream had (when it was read to the end).
 */
export async function heldOutClips(observed: Stream<ObservedClip>, spec: FrameBatchSpec, o: HeldOutOptions & { readonly count: number }): Promise<{ clips: HeldOutClip[]; of?: number }> {
  if (o.seed === undefined) {
    const chosen: HeldOutClip[] = [];
    for await (const clip of heldOutStream(observed, spec)) {
      chosen.push(clip);
      if (chosen.length >= o.count) break;
    }
    return { clips: chosen };
  }
  const { sample, seen } = await reservoirSample(pull(observed), o.count, Random.fromKey('eval-sample', o.seed));
  o.log?.(`evaluation sample: ${sample.length} of the ${seen} test clips, drawn uniformly with seed ${o.seed}`);
  return { clips: sample.map((clip) => heldOutClip(clip, spec)), of: seen };
}

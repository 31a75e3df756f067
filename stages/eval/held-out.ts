/**
 * The held-out clips a training run is scored on: observed clips (with their masks and clean
 * pixels, as the occlusion stage leaves them) read from a chain, chosen, and turned into floats in
 * [0, 1]. With a seed the choice is a seeded uniform sample of the whole stream (files are often in
 * order: KTH's first test clips are all boxing, SST's all January); without one, its first clips.
 */
import type { FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import type { ObservedClip } from '../occlusion/occlude.ts';
import { pull } from '../../pipeline/operators/pull.ts';
import type { Stream } from '../../pipeline/stage.ts';
import { reservoirSample } from '../batch/sample.ts';
import { Random } from '../random.ts';
import { toUnit, type HeldOutClip } from './evaluate.ts';

export interface HeldOutOptions {
  readonly count: number;
  /** Seed of a uniform sample of the whole stream; absent: the first `count` clips. */
  readonly seed?: number;
  readonly log?: (line: string) => void;
}

/**
 * @example
 * const clips = () => heldOutClips(test.pipe(fitClips(…), occlude(…)), spec, { count: 64, seed: 1 });
 * @param observed occluded clips: `frames` observed, `mask`, and `truth` the clean pixels.
 * @returns the chosen clips in [0, 1], in stream order.
 */
export async function heldOutClips(observed: Stream<ObservedClip>, spec: FrameBatchSpec, o: HeldOutOptions): Promise<HeldOutClip[]> {
  let chosen: ObservedClip[];
  if (o.seed === undefined) {
    chosen = [];
    for await (const clip of pull(observed)) {
      chosen.push(clip);
      if (chosen.length >= o.count) break;
    }
  } else {
    const { sample, seen } = await reservoirSample(pull(observed), o.count, Random.fromKey('eval-sample', o.seed));
    o.log?.(`evaluation sample: ${sample.length} of the ${seen} test clips, drawn uniformly with seed ${o.seed}`);
    chosen = sample;
  }
  return chosen.map((clip) => ({ id: clip.id, mask: clip.mask, observed: toUnit(clip.frames, spec.range), truth: toUnit(clip.truth, spec.range) }));
}

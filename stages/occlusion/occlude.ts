/**
 * `occlude`: the stage that turns clean clips into observed ones under an occlusion process,
 * y = x·m + c·(1 − m), writing the mask beside the pixels. The mask of a clip is a pure function
 * of (run seed, clip id, process, options), so re-running a graph observes the same data. The
 * stage's telemetry summarises the occluded fraction over clips (mean ± std), like the occlusion
 * rate column of the paper's SST table.
 */
import type { PhysicalScale } from '../eval/metrics.ts';
import type { Clip, FrameBatchSpec, Pixels } from '../../pipeline/frame-batch.ts';
import { mapAsync } from '../../pipeline/operators/map-async.ts';
import { defer } from 'rxjs';
import { named, type Stage, type StageOptions } from '../../pipeline/stage.ts';
import type { OcclusionChoice } from './index.ts';
import { applyMask, clipRandom, fillValue, occludedFraction, type MaskDrawer } from './process.ts';

export interface OccludeOptions extends StageOptions<Clip> {
  /** The run's seed; with the clip id, process and options it determines each clip's mask. */
  readonly seed: number;
  /** Shape and value range of the clips (the fill value c is the top or bottom of the range). */
  readonly spec: FrameBatchSpec;
  /** Stage name. Default `occlude-<process>`. */
  readonly name?: string;
}

/**
 * A clip as the occlusion stage leaves it: observed pixels, its mask, and the clean pixels it was
 * made from, for measurement only (held-out scoring): never a training input, and not a column of
 * frame batches.
 */
export interface ObservedClip extends Clip {
  readonly mask: Uint8Array;
  readonly truth: Pixels;
  /** Carried from the dataset's clip: its physical unit per unit of pixel value (SST: °C). */
  readonly physical?: PhysicalScale;
}

/**
 * @example
 * source.pipe(occlude(chooseOcclusion('raindrops', { drops: 20 }), { seed: 1, spec }))
 * @returns a stage emitting each clip observed: new pixels, its mask (AND-ed with a mask it already
 *   had), the process name, the run seed, and the clean pixels as `truth` (for measurement only).
 */
export function occlude({ process, options }: OcclusionChoice, stage: OccludeOptions): Stage<Clip, ObservedClip> {
  const { shape, range } = stage.spec;
  const c = fillValue(process, range);
  const name = stage.name ?? `occlude-${process.name}`;
  // The drawer (which may have read mask files) belongs to one subscription, like all stage state.
  return named(name, (upstream) =>
    defer(() => {
      let drawer: Promise<MaskDrawer> | undefined;
      return upstream.pipe(
        mapAsync(
          name,
          async (clip: Clip & { truth?: Pixels }): Promise<ObservedClip> => {
            drawer ??= Promise.resolve(process.prepare(options, shape));
            const mask = (await drawer).draw(clipRandom(stage.seed, clip.id, process.name, options));
            const frames = applyMask(clip.frames, mask, shape.channels, c);
            if (clip.mask) for (let i = 0; i < mask.length; i++) mask[i]! &= clip.mask[i]!;
            const processName = clip.process && clip.process !== 'none' ? `${clip.process}+${process.name}` : process.name;
            return { ...clip, frames, mask, truth: clip.truth ?? clip.frames, seed: BigInt(stage.seed), process: processName };
          },
          { concurrency: 1, ...stage, measure: (clip: Clip) => ({ occluded: occludedFraction(clip.mask!) }) },
        ),
      );
    }),
    { capacity: stage.capacity, params: { process: process.name, ...options, seed: stage.seed } },
  );
}

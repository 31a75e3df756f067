/**
 * `unpairedClean`: for the paper's unpaired supervised model, each observed clip's `truth` is
 * replaced by the next clip of another stream of clean clips (a second, differently seeded shuffle
 * of the train split), so that the discriminators see clean clips that are not the observations'.
 * The i-th observation always meets the i-th clean clip, so a resumed run pairs them as before.
 */
import { defer, finalize } from 'rxjs';
import type { Clip } from '../../pipeline/frame-batch.ts';
import { mapAsync } from '../../pipeline/operators/map-async.ts';
import { pull } from '../../pipeline/operators/pull.ts';
import { named, type Stage, type Stream } from '../../pipeline/stage.ts';
import type { ObservedClip } from '../occlusion/occlude.ts';

/**
 * @example
 * observed.pipe(unpairedClean(shuffledEpochs(train, { seed: seed + 1, … }).pipe(fitClips(…))), frameBatches(spec, 8, { clean: true }))
 */
export function unpairedClean(clean: Stream<Clip>, name = 'unpair'): Stage<ObservedClip, ObservedClip> {
  return named(
    name,
    (upstream) =>
      defer(() => {
        const others = pull(clean)[Symbol.asyncIterator]();
        return upstream.pipe(
          mapAsync(
            name,
            async (clip: ObservedClip): Promise<ObservedClip> => {
              const next = await others.next();
              if (next.done) throw new Error('the stream of clean clips ended before the observations');
              if (next.value.frames.length !== clip.truth.length) throw new Error(`clean clip "${next.value.id}" has ${next.value.frames.length} values, the observation "${clip.id}" ${clip.truth.length}`);
              return { ...clip, truth: next.value.frames };
            },
            { concurrency: 1 },
          ),
          finalize(() => void others.return?.()),
        );
      }),
    { reads: [clean] },
  );
}

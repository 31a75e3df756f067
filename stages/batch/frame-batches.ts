/**
 * `frameBatches`: clips grouped `size` at a time into Arrow frame batches (pixels, masks, ids),
 * the unit a training step takes. Their buffers are recycled once the consumer releases a batch,
 * so a long run allocates them only a few times.
 *
 * With `clean`, for the paper's supervised models, a batch holds the `size` observed clips and
 * then their `size` clean clips (`truth`), fully visible, ids suffixed `+clean`: the training step
 * splits it in two halves.
 */
import type { RecordBatch } from 'apache-arrow';
import { FrameBatchPool, encodeFrameBatch, type Clip, type FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { batch } from '../../pipeline/operators/batch.ts';
import type { Stage } from '../../pipeline/stage.ts';
import type { ObservedClip } from '../occlusion/occlude.ts';

/**
 * @example
 * observed.pipe(frameBatches(spec, 8), trainGan(…))
 */
export function frameBatches(spec: FrameBatchSpec, size: number): Stage<Clip, RecordBatch>;
export function frameBatches(spec: FrameBatchSpec, size: number, o: { readonly clean: boolean }): Stage<ObservedClip, RecordBatch>;
export function frameBatches(spec: FrameBatchSpec, size: number, o?: { readonly clean: boolean }): Stage<Clip, RecordBatch> {
  const pool = new FrameBatchPool();
  const withClean = (clips: ObservedClip[]): Clip[] => [...clips, ...clips.map((c) => ({ id: `${c.id}+clean`, frames: c.truth, process: 'clean' }))];
  return batch('batch-clips', size, (clips: Clip[]) => encodeFrameBatch(spec, o?.clean ? withClean(clips as ObservedClip[]) : clips, pool), { recycle: (b) => pool.recycle(b) });
}

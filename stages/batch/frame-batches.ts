/**
 * `frameBatches`: clips grouped `size` at a time into Arrow frame batches (pixels, masks, ids),
 * the unit a training step takes. Their buffers are recycled once the consumer releases a batch,
 * so a long run allocates them only a few times.
 */
import type { RecordBatch } from 'apache-arrow';
import { FrameBatchPool, encodeFrameBatch, type Clip, type FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { batch } from '../../pipeline/operators/batch.ts';
import type { Stage } from '../../pipeline/stage.ts';

/**
 * @example
 * observed.pipe(frameBatches(spec, 8), trainGan(…))
 */
export function frameBatches(spec: FrameBatchSpec, size: number): Stage<Clip, RecordBatch> {
  const pool = new FrameBatchPool();
  return batch('batch-clips', size, (clips: Clip[]) => encodeFrameBatch(spec, clips, pool), { recycle: (b) => pool.recycle(b) });
}

/**
 * `trainGan`: the training step as a stage over Arrow frame batches. It takes the next batch only
 * when the previous iteration is done (one in flight, so it is the credit-giver that paces the
 * whole graph), emits one {@link StepRecord} per iteration, and checkpoints every N iterations and
 * when it stops for any reason but divergence: the end of the data, SIGINT, or an error elsewhere
 * in the graph. A diverged trainer (NaN or Inf loss) or one whose device failed is never
 * checkpointed, so the last good checkpoint stays the newest. A checkpoint at teardown waits for
 * the iteration in flight (the weights and the step count must agree) and is finished through
 * {@link finishAfterTeardown}, since reading a GPU's memory back is asynchronous.
 *
 * The trainer is made on the first batch, after the backend is chosen and, on resume, restored
 * from the newest checkpoint.
 *
 * Two batches are in the stage at once: the one training and the next, whose pixels are turned
 * into tensors and sent to the device ({@link uploadAhead}) as soon as it arrives, while the
 * iteration before it runs. Iterations still run one at a time, in order.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RecordBatch } from 'apache-arrow';
import { defer, finalize } from 'rxjs';
import { latestIntactCheckpoint, loadCheckpoint, saveCheckpoint } from '../../pipeline/checkpoint.ts';
import { uploadAhead } from '../../pipeline/backend.ts';
import { mapAsync } from '../../pipeline/operators/map-async.ts';
import { finishAfterTeardown } from '../../pipeline/teardown.ts';
import { named, type Stage } from '../../pipeline/stage.ts';
import { framesTensor, maskTensor } from '../../pipeline/tensor.ts';
import type { CheckpointContent } from '../../pipeline/checkpoint.ts';
import type { StepRecord, TrainerState } from './trainer.ts';

/** What the stage trains: a `GanTrainer`, or a `DataParallelTrainer` spreading it over two threads. */
export interface Trainer {
  readonly step: number;
  readonly position: number;
  readonly healthy: boolean;
  trainStep(y: tf.Tensor5D, m: tf.Tensor5D): StepRecord | Promise<StepRecord>;
  inpaint(y: tf.Tensor5D, m: tf.Tensor5D): tf.Tensor5D;
  snapshot(): Promise<CheckpointContent<TrainerState>>;
  restore(content: CheckpointContent<TrainerState>): void | Promise<void>;
  dispose(): void;
}

export interface TrainGanOptions {
  /** Makes the trainer (the backend is chosen by then). Called once per subscription. */
  readonly createTrainer: () => Trainer | Promise<Trainer>;
  /** Folder of the run's checkpoints (`step-N/`). */
  readonly checkpoints: string;
  /** Checkpoint every this many iterations (and at the end). 0: only at the end. */
  readonly checkpointEvery: number;
  /** Restore the newest checkpoint of `checkpoints` before the first iteration. */
  readonly resume?: boolean;
  /** Checkpoints kept. Default 3. */
  readonly keep?: number;
  readonly log?: (line: string) => void;
  /**
   * Called after every iteration with the trainer (for example to score it on held-out clips
   * every K steps); what it returns, unless undefined, rides on that step's record as `evaluation`.
   */
  readonly evaluate?: (trainer: Trainer, record: StepRecord) => unknown;
}

/**
 * A step's record as the stage emits it: `waitMs` is how long the stage waited for this batch's
 * tensors after finishing the previous iteration (its evaluation included), the share of time the
 * trainer was starved by the stages upstream (0 when the batch was on the device in time).
 */
export type TrainRecord = StepRecord & { readonly waitMs: number; readonly evaluation?: unknown };

/**
 * @example
 * batches.pipe(trainGan({ createTrainer: () => new GanTrainer(o), checkpoints: join(runDir, 'checkpoints'), checkpointEvery: 50 }))
 * @returns a stage emitting one record per iteration, with the losses shown in the progress display.
 */
export function trainGan(o: TrainGanOptions): Stage<RecordBatch, TrainRecord> {
  const name = 'train-gan';
  return named(name, (upstream) =>
    defer(() => {
      let trainer: Promise<Trainer> | undefined;
      let ready: Trainer | undefined;
      let savedStep = -1;
      let closed = false;
      let idleSince: number | undefined;
      // The iteration running now, if any (a teardown's checkpoint waits for it).
      let inFlight: Promise<unknown> = Promise.resolve();
      // Resolves when the iteration before the newest batch is done: iterations run in turn.
      let turn: Promise<void> = Promise.resolve();
      const save = async (t: Trainer): Promise<void> => {
        if (!t.healthy || t.step === savedStep || t.step === 0) return;
        const step = t.step;
        const content = await t.snapshot();
        if (savedStep >= step) return;
        const path = saveCheckpoint(o.checkpoints, content, o.keep ?? 3);
        savedStep = step;
        o.log?.(`checkpoint ${path}`);
      };
      const start = async (): Promise<Trainer> => {
        const t = await o.createTrainer();
        ready = t;
        // A damaged newest checkpoint (a disk error, a copy cut short) gives way to the one before.
        const latest = o.resume ? latestIntactCheckpoint(o.checkpoints, (path, reason) => o.log?.(`${reason}; resuming from an earlier checkpoint`)) : undefined;
        if (o.resume && !latest) o.log?.(`no checkpoint under ${o.checkpoints}: starting from step 0`);
        if (latest) {
          await t.restore(loadCheckpoint<TrainerState>(latest.path));
          savedStep = t.step;
          o.log?.(`resumed from ${latest.path} (step ${t.step}, ${t.position} clips seen)`);
        }
        return t;
      };
      return upstream.pipe(
        mapAsync(
          name,
          async (batch: RecordBatch): Promise<TrainRecord> => {
            const previous = turn;
            let done!: () => void;
            turn = new Promise((resolve) => (done = resolve));
            let tensors: tf.Tensor5D[] = [];
            try {
              // The backend is chosen when the trainer is made, before the first tensor.
              const t = await (trainer ??= start());
              if (closed) throw new Error('the stage was torn down');
              const [y, m] = (tensors = [framesTensor(batch), maskTensor(batch)]) as [tf.Tensor5D, tf.Tensor5D];
              uploadAhead(tensors);
              const readyAt = performance.now();
              await previous;
              const waitMs = idleSince === undefined ? 0 : Math.max(0, readyAt - idleSince);
              // An iteration is one long synchronous block and the next batch is ready at once, so
              // without a macrotask turn here timers and signal handlers (Ctrl-C) would never run.
              await new Promise((resolve) => setImmediate(resolve));
              if (closed) throw new Error('the stage was torn down'); // nobody listens any more
              let record: StepRecord;
              const iteration = (async () => {
                record = await t.trainStep(y, m);
                if (o.checkpointEvery > 0 && record.step % o.checkpointEvery === 0) await save(t);
              })();
              inFlight = iteration.catch(() => {});
              await iteration;
              const evaluation = o.evaluate ? await o.evaluate(t, record!) : undefined;
              idleSince = performance.now();
              return evaluation === undefined ? { ...record!, waitMs } : { ...record!, waitMs, evaluation };
            } finally {
              tf.dispose(tensors);
              done();
            }
          },
          { concurrency: 2, capacity: 2, measure: (r: TrainRecord) => ({ lossG: r.lossG, lossD: r.lossD, stepMs: r.stepMs, waitMs: r.waitMs }) },
        ),
        finalize(() => {
          closed = true;
          const t = ready;
          if (t) {
            finishAfterTeardown(
              inFlight
                .then(() => save(t))
                .finally(() => t.dispose()),
            );
          }
        }),
      );
    }),
  );
}

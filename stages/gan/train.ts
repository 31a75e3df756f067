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
import { Observable, Subject, defer, finalize, takeUntil, tap } from 'rxjs';
import { loadCheckpoint, saveCheckpoint } from '../../pipeline/checkpoint.ts';
import type { CheckpointPlan } from './checkpoints.ts';
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

type Made = Trainer | { readonly trainer: Trainer; readonly backend: string };

export interface TrainGanOptions {
  /**
   * Makes the trainer (choosing the backend first), with a line naming the backend it runs on.
   * Called once per subscription.
   */
  readonly createTrainer: () => Made | Promise<Made>;
  /** Where and how often checkpoints are written, and the one a resumed run starts from. */
  readonly checkpoints: CheckpointPlan;
  /**
   * The authors' stopping rule: training stops after an iteration whose discriminator loss
   * (D_s + D_f) or generator loss falls under this (official code: 0.001). 0 or absent: never.
   */
  readonly stopBelow?: number;
  readonly log?: (line: string) => void;
}

/**
 * The model as it is after one iteration. It stays so while the step's record is held: the trainer
 * starts its next iteration only when every stage has released the record.
 */
export interface TrainedModel {
  readonly step: number;
  /** Fills observations `y` (in [−1, 1]) where `m` is 0; the caller disposes the result. */
  inpaint(y: tf.Tensor5D, m: tf.Tensor5D): tf.Tensor5D;
}

/**
 * A step's record as the stage emits it: `waitMs` is how long the stage waited for this batch's
 * tensors after the previous step's record was released, the share of time the trainer was
 * starved by the stages upstream (0 when the batch was on the device in time). The first record
 * of a run (or of a resumed session) names the backend.
 */
export type TrainRecord = StepRecord & {
  readonly waitMs: number;
  readonly backend?: string;
  readonly model: TrainedModel;
  /**
   * Whether this is the run's last iteration: the data ended after its batch, or the stopping rule
   * ended training. Known when the record is emitted (the stage waits for the next batch or the end
   * of its input first), so that a final evaluation can run on the final weights.
   */
  readonly last: boolean;
};

/**
 * @example
 * batches.pipe(trainGan({ createTrainer, checkpoints: checkpoints(run, { every: 50 }) }), evaluateEvery(…))
 * @returns a stage emitting one record per iteration, with the losses shown in the progress display.
 */
export function trainGan(o: TrainGanOptions): Stage<RecordBatch, TrainRecord> {
  const name = 'train-gan';
  const plan = o.checkpoints;
  return named(
    name,
    (upstream) =>
      defer(() => {
        let trainer: Promise<Trainer> | undefined;
        let ready: Trainer | undefined;
        let backend: string | undefined;
        let savedStep = -1;
        let closed = false;
        let idleSince: number | undefined;
        // The iteration running now, if any (a teardown's checkpoint waits for it).
        let inFlight: Promise<unknown> = Promise.resolve();
        // Resolves when the step before the newest batch is done with: its iteration ran and its
        // record was released by every stage after this one, so the model may change again.
        let turn: Promise<void> = Promise.resolve();
        const releases = new WeakMap<TrainRecord, () => void>();
        // Look-ahead: batches that entered the stage, whether the input ended, whether the stopping rule fired.
        let arrivals = 0;
        let ended = false;
        let stopped = false;
        const stop = new Subject<void>();
        let waiting: Array<() => void> = [];
        const wake = (): void => {
          const now = waiting;
          waiting = [];
          for (const check of now) check();
        };
        // Whether a batch follows the one at `index`: false once the input ended without one.
        const followed = (index: number): Promise<boolean> =>
          new Promise((resolve) => {
            const check = (): void => (arrivals > index + 1 ? resolve(true) : ended ? resolve(false) : void waiting.push(check));
            check();
          });
        const save = async (t: Trainer): Promise<void> => {
          if (!t.healthy || t.step === savedStep || t.step === 0) return;
          const step = t.step;
          const content = await t.snapshot();
          if (savedStep >= step) return;
          const path = saveCheckpoint(plan.dir, content, plan.keep);
          savedStep = step;
          o.log?.(`checkpoint ${path}`);
        };
        const start = async (): Promise<Trainer> => {
          const made = await o.createTrainer();
          const t = (ready = 'trainer' in made ? made.trainer : made);
          if ('trainer' in made) backend = made.backend;
          if (plan.resumeFrom) {
            await t.restore(loadCheckpoint<TrainerState>(plan.resumeFrom.path));
            savedStep = t.step;
            o.log?.(`resumed from ${plan.resumeFrom.path} (step ${t.step}, ${t.position} clips seen)`);
          }
          return t;
        };
        return upstream.pipe(
          tap({ complete: () => ((ended = true), wake()) }),
          takeUntil(stop),
          mapAsync(
            name,
            (batch: RecordBatch) =>
              new Observable<TrainRecord>((subscriber) => {
                const index = arrivals++;
                wake();
                const previous = turn;
                let done!: () => void;
                turn = new Promise((resolve) => (done = resolve));
                let tensors: tf.Tensor5D[] = [];
                const run = async (): Promise<TrainRecord | undefined> => {
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
                    if (stopped) return undefined; // a batch that came in before the stopping rule fired
                    let step!: StepRecord;
                    const iteration = (async () => {
                      step = await t.trainStep(y, m);
                      if ((plan.every > 0 && step.step % plan.every === 0)) await save(t);
                    })();
                    inFlight = iteration.catch(() => {});
                    await iteration;
                    const limit = o.stopBelow ?? 0;
                    if (limit > 0 && (step.lossD < limit || step.lossG < limit)) {
                      stopped = true;
                      o.log?.(`stopping at step ${step.step}: the ${step.lossD < limit ? `discriminators' loss ${step.lossD.toExponential(2)}` : `generator's loss ${step.lossG.toExponential(2)}`} is under ${limit} (the authors' stopping rule; --stop-below 0 turns it off)`);
                      stop.next();
                    }
                    const last = stopped || !(await followed(index));
                    const model: TrainedModel = { step: step.step, inpaint: (yy, mm) => t.inpaint(yy, mm) };
                    const first = backend;
                    backend = undefined;
                    return { ...step, waitMs, ...(first !== undefined && { backend: first }), model, last };
                  } finally {
                    tf.dispose(tensors);
                  }
                };
                run().then(
                  (record) => {
                    if (!record) {
                      done();
                      subscriber.complete();
                      return;
                    }
                    // The job ends when its record is released, so the stage (and its trainer)
                    // outlives every step a later stage still reads the model of.
                    releases.set(record, () => {
                      idleSince = performance.now();
                      done();
                      subscriber.complete();
                    });
                    subscriber.next(record);
                  },
                  (err: unknown) => {
                    done();
                    subscriber.error(err);
                  },
                );
              }),
            {
              concurrency: 2,
              capacity: 2,
              measure: (r: TrainRecord) => ({ lossG: r.lossG, lossD: r.lossD, stepMs: r.stepMs, waitMs: r.waitMs }),
              onRelease: (r) => releases.get(r)?.(),
            },
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
    { capacity: 2, params: { checkpointEvery: plan.every, keep: plan.keep, ...(o.stopBelow && { stopBelow: o.stopBelow }), ...(plan.resumeFrom && { resumeFrom: plan.resumeFrom.path }) } },
  );
}

/**
 * Data-parallel training on two CPU threads. The wasm backend runs one thread under Node, so the
 * second core gets a second replica of the three networks in a worker thread: each iteration's
 * batch is split in two, each thread runs the same `GanTrainer.trainStep` on its part, and at
 * every gradient (the G step and each D step) the two average their gradients through shared
 * memory (allreduce.ts), weighted by clips. Both apply the same Adam update to the same weights,
 * so the replicas stay identical; the leader (this thread) draws the fresh masks for the whole
 * batch, keeps the data position and writes the checkpoints.
 *
 * What differs from one thread: batch-norm statistics are taken over each half of the batch
 * ("ghost" batch norm), and the running statistics checkpointed are the leader's. A run is
 * deterministic for a given seed and thread count.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import type { CheckpointContent } from '../../pipeline/checkpoint.ts';
import { SharedAllReduce } from './allreduce.ts';
import { parameterCounts } from './networks.ts';
import { GanTrainer, type StepRecord, type TrainerOptions, type TrainerState } from './trainer.ts';

/** What both replicas are built from (no sampler: the leader's draws the masks of both). */
export type ReplicaOptions = Omit<TrainerOptions, 'sampler' | 'parallel'>;

export interface WorkerInit {
  readonly backend: string;
  readonly options: ReplicaOptions;
  readonly buffer: SharedArrayBuffer;
}

export type ToWorker =
  | { readonly type: 'step'; readonly y: Float32Array; readonly m: Float32Array; readonly shape: [number, number, number, number, number]; readonly fresh: Uint8Array; readonly clips: number }
  | { readonly type: 'restore'; readonly content: CheckpointContent<TrainerState> }
  | { readonly type: 'snapshot' };

export type FromWorker =
  | { readonly type: 'ready' }
  | { readonly type: 'done' }
  | { readonly type: 'snapshot'; readonly content: CheckpointContent<TrainerState> }
  | { readonly type: 'error'; readonly message: string };

/** The same surface as GanTrainer, for the training stage and evaluation. */
export class DataParallelTrainer {
  private constructor(
    private readonly leader: GanTrainer,
    private readonly sampler: TrainerOptions['sampler'],
    private readonly worker: Worker,
    private readonly reducer: SharedAllReduce,
    private readonly replies: AsyncReplies,
  ) {}

  /**
   * The worker's reply to the last step. It is awaited at the start of the next call rather than
   * at the end of the step, so that the step's record leaves at once: once the leader's step has
   * returned, the worker has passed the step's last exchange and its work is done.
   */
  private pending: Promise<unknown> = Promise.resolve();

  /**
   * Starts the worker replica on `backend` (already active in this thread) and waits until it is ready.
   */
  static async start(options: TrainerOptions, backend: string): Promise<DataParallelTrainer> {
    const counts = parameterCounts(options.config);
    const capacity = Math.max(counts.generator!, counts.frameDiscriminator! + counts.sequenceDiscriminator!, 16);
    const buffer = SharedAllReduce.buffer(capacity);
    const { sampler: _sampler, parallel: _parallel, ...replica } = options;
    const init: WorkerInit = { backend, options: replica, buffer };
    const worker = new Worker(fileURLToPath(new URL('./parallel-worker.mjs', import.meta.url)), { workerData: init });
    const replies = new AsyncReplies(worker);
    await replies.next();
    const reducer = new SharedAllReduce(buffer, 0);
    return new DataParallelTrainer(new GanTrainer({ ...options, parallel: reducer }), options.sampler, worker, reducer, replies);
  }

  get config(): TrainerOptions['config'] {
    return this.leader.config;
  }
  get step(): number {
    return this.leader.step;
  }
  get position(): number {
    return this.leader.position;
  }
  get healthy(): boolean {
    return this.leader.healthy;
  }

  /** One iteration over the whole batch, split between the two threads (at least 2 clips). */
  async trainStep(y: tf.Tensor5D, m: tf.Tensor5D): Promise<StepRecord> {
    const [b, t, h, w, c] = y.shape;
    if (b < 2) throw new Error(`two training threads need batches of at least 2 clips, got ${b}`);
    await this.pending;
    // A dead worker would leave this thread waiting at the first gradient: fail first instead.
    await this.replies.alive();
    const first = Math.ceil(b / 2);
    const fresh = this.sampler.sample(b);
    const maskSize = t * h * w;
    const [yAll, mAll] = [y.dataSync() as Float32Array, m.dataSync() as Float32Array];
    this.worker.postMessage({
      type: 'step',
      y: yAll.slice(first * maskSize * c),
      m: mAll.slice(first * maskSize),
      shape: [b - first, t, h, w, c],
      fresh: fresh.slice(first * maskSize),
      clips: b,
    } satisfies ToWorker);
    const [y0, m0] = tf.tidy(() => [tf.slice(y, 0, first), tf.slice(m, 0, first)]) as [tf.Tensor5D, tf.Tensor5D];
    try {
      const record = await this.leader.trainStep(y0, m0, { fresh: fresh.subarray(0, first * maskSize), clips: b });
      this.pending = this.replies.next();
      // Not awaited here; a rejection surfaces at the next call (and is not unhandled meanwhile).
      this.pending.catch(() => {});
      return record;
    } catch (err) {
      this.reducer.abort();
      throw err;
    } finally {
      tf.dispose([y0, m0]);
    }
  }

  inpaint(y: tf.Tensor5D, m: tf.Tensor5D): tf.Tensor5D {
    return this.leader.inpaint(y, m);
  }

  snapshot(): Promise<CheckpointContent<TrainerState>> {
    return this.leader.snapshot();
  }

  /** The worker replica's own state (to check that the replicas agree). */
  async replicaSnapshot(): Promise<CheckpointContent<TrainerState>> {
    await this.pending;
    this.worker.postMessage({ type: 'snapshot' } satisfies ToWorker);
    const reply = await this.replies.next();
    if (reply.type !== 'snapshot') throw new Error(`training thread 2 answered ${reply.type} to a snapshot request`);
    return reply.content;
  }

  /** Restores both replicas (the worker from the same content). */
  async restore(content: CheckpointContent<TrainerState>): Promise<void> {
    await this.pending;
    this.leader.restore(content);
    this.worker.postMessage({ type: 'restore', content } satisfies ToWorker);
    await this.replies.next();
  }

  dispose(): void {
    this.reducer.abort();
    void this.worker.terminate();
    this.leader.dispose();
  }
}

/** The worker's replies in order; an error reply or the worker's death rejects. */
class AsyncReplies {
  private readonly queue: FromWorker[] = [];
  private waiting: { resolve: (m: FromWorker) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(worker: Worker) {
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'error') return this.fail(new Error(`training thread 2: ${m.message}`));
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = undefined;
        w.resolve(m);
      } else this.queue.push(m);
    });
    worker.on('error', (err) => this.fail(new Error(`training thread 2 failed: ${err.message}`)));
    worker.on('exit', (code) => this.fail(new Error(`training thread 2 exited (code ${code})`)));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(this.failure);
  }

  /** Rejects if the worker has failed or exited. */
  alive(): Promise<void> {
    return this.failure ? Promise.reject(this.failure) : Promise.resolve();
  }

  next(): Promise<FromWorker> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }
}

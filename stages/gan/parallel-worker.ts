/**
 * The second training thread of data-parallel training (parallel.ts): a replica of the trainer,
 * built from the same options and seed, that trains on its part of every batch and averages its
 * gradients with the leader's through shared memory.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../pipeline/backend.ts';
import { Random } from '../random.ts';
import { SharedAllReduce } from './allreduce.ts';
import type { FromWorker, ToWorker, WorkerInit } from './parallel.ts';
import { GanTrainer } from './trainer.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const reply = (m: FromWorker): void => port.postMessage(m);

await selectBackend(init.backend);
const reducer = new SharedAllReduce(init.buffer, 1);
const unused = Random.fromKey('replica-draws-no-masks').state;
const trainer = new GanTrainer({
  ...init.options,
  sampler: {
    sample(): Uint8Array {
      throw new Error('the replica draws no masks: the leader hands them out');
    },
    state: unused,
  },
  parallel: reducer,
});

// Messages are handled one at a time, in order: the leader sends the next only after the reply.
let queue: Promise<void> = Promise.resolve();
port.on('message', (message: ToWorker) => {
  queue = queue.then(() => handle(message));
});

async function handle(message: ToWorker): Promise<void> {
  try {
    if (message.type === 'restore') {
      trainer.restore(message.content);
    } else if (message.type === 'snapshot') {
      const content = await trainer.snapshot();
      return reply({ type: 'snapshot', content: { ...content, arrays: new Map([...content.arrays].map(([k, a]) => [k, { shape: a.shape, values: Float32Array.from(a.values) }])) } });
    } else {
      const [b, t, h, w] = message.shape;
      const y = tf.tensor5d(message.y, message.shape);
      const m = tf.tensor5d(message.m, [b, t, h, w, 1]);
      try {
        await trainer.trainStep(y, m, { fresh: message.fresh, clips: message.clips });
      } finally {
        tf.dispose([y, m]);
      }
    }
    reply({ type: 'done' });
  } catch (err) {
    reducer.abort();
    reply({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  }
}
reply({ type: 'ready' });

/**
 * A seeded shuffle of a stream too large to hold: a buffer of `size` items; each new item takes
 * the place of one drawn at random, which is emitted; at the end the rest come out in a random
 * order. Memory is bounded by the buffer whatever the stream's length; the order is a pure
 * function of the input order and the random state, so a seeded run repeats.
 *
 * Must not know about tensors or any dataset.
 */
import { UsageError } from '../../pipeline/errors.ts';
import { pull } from '../../pipeline/operators/pull.ts';
import { source } from '../../pipeline/operators/source.ts';
import type { Stream } from '../../pipeline/stage.ts';
import { Random } from '../random.ts';

/**
 * @example
 * for await (const clip of shuffled(pull(clips), 256, Random.fromKey('shuffle', seed, epoch))) …
 * @param size how many items the buffer holds (1: the input order).
 */
export async function* shuffled<T>(items: AsyncIterable<T> | Iterable<T>, size: number, random: Random): AsyncGenerator<T> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`shuffle buffer size must be a positive integer, got ${size}`);
  const buffer: T[] = [];
  for await (const item of items) {
    if (buffer.length < size) {
      buffer.push(item);
      continue;
    }
    const j = random.int(0, size - 1);
    const out = buffer[j]!;
    buffer[j] = item;
    yield out;
  }
  while (buffer.length > 0) {
    const j = random.int(0, buffer.length - 1);
    const out = buffer[j]!;
    buffer[j] = buffer[buffer.length - 1]!;
    buffer.pop();
    yield out;
  }
}

export interface ShuffledEpochsOptions {
  /** Shuffle buffer, in items. */
  readonly buffer: number;
  readonly seed: number;
  /** Stream position to start from (a resumed run's), counted across epochs. */
  readonly start: number;
  /** Items to emit from `start` on (Infinity: as many as the epochs give). */
  readonly count: number;
  /** Epochs at most (absent: as many as `count` needs). */
  readonly epochs?: number;
  /** Stage name. Default `shuffle`. */
  readonly name?: string;
  /** The error when an epoch finds the input empty (naming the dataset and split). */
  readonly empty?: string;
}

/**
 * Epoch after epoch through `items`, each epoch read afresh and through its own seeded shuffle
 * buffer, emitting positions `start` to `start + count − 1`: a resumed run sees exactly the items
 * an uninterrupted run would have seen from there.
 * @example
 * shuffledEpochs(kth.train, { buffer: 256, seed: 1, start: 0, count: steps * batch })
 */
export function shuffledEpochs<T>(items: Stream<T>, o: ShuffledEpochsOptions): Stream<T> {
  const random = (epoch: number): Random => Random.fromKey('shuffle', o.seed, epoch);
  return source(
    o.name ?? 'shuffle',
    async function* () {
      let position = 0;
      for (let epoch = 0; position < o.start + o.count && epoch < (o.epochs ?? Infinity); epoch++) {
        let any = false;
        for await (const item of shuffled(pull(items), o.buffer, random(epoch))) {
          any = true;
          if (position >= o.start) yield item;
          position += 1;
          if (position >= o.start + o.count) return;
        }
        if (!any) throw new UsageError(o.empty ?? 'the input of the shuffle is empty');
      }
    },
    { reads: [items] },
  );
}

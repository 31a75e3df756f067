/**
 * A seeded shuffle of a stream too large to hold: a buffer of `size` items; each new item takes
 * the place of one drawn at random, which is emitted; at the end the rest come out in a random
 * order. Memory is bounded by the buffer whatever the stream's length; the order is a pure
 * function of the input order and the random state, so a seeded run repeats.
 *
 * Must not know about tensors or any dataset.
 */
import type { Random } from '../random.ts';

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

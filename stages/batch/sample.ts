/**
 * A seeded uniform sample of `size` items from a stream of unknown length, in one pass and in
 * memory for `size` items (reservoir sampling, Vitter's algorithm R): every item of the stream is
 * in the sample with probability size / length. The sample keeps the stream's order, and is a
 * pure function of the stream and the random state, so a seeded run repeats.
 *
 * Must not know about tensors or any dataset.
 */
import type { Random } from '../random.ts';

/**
 * @example
 * const clips = await reservoirSample(pull(testSplit), 64, Random.fromKey('eval-sample', seed));
 * @returns the sample (all items when the stream has at most `size`) and how many items the stream had.
 */
export async function reservoirSample<T>(items: AsyncIterable<T> | Iterable<T>, size: number, random: Random): Promise<{ sample: T[]; seen: number }> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`sample size must be a positive integer, got ${size}`);
  const kept: Array<{ at: number; item: T }> = [];
  let seen = 0;
  for await (const item of items) {
    if (kept.length < size) kept.push({ at: seen, item });
    else {
      const j = random.int(0, seen);
      if (j < size) kept[j] = { at: seen, item };
    }
    seen += 1;
  }
  return { sample: kept.sort((a, b) => a.at - b.at).map((k) => k.item), seen };
}

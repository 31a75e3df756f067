/**
 * Training order: the items of a split visited epoch after epoch, each epoch in its own seeded
 * shuffle, from any position. Item k of the stream is a pure function of (seed, items, k), so a run
 * resumed at position p sees exactly what an uninterrupted run saw from p on.
 *
 * Must not know about tensors or any dataset.
 */
import { Random } from '../random.ts';

/** A seeded permutation of 0 … n−1 (Fisher–Yates). */
export function permutation(n: number, random: Random): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = random.int(0, i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/**
 * @example
 * for (const index of epochOrder(trainIndices, { seed: 1, start: 0, count: 400 })) yield clip(index);
 * @param items what one epoch visits (clip indices of the training split).
 * @returns `count` items from stream position `start`, each epoch shuffled by (seed, epoch).
 */
export function* epochOrder<T>(items: readonly T[], o: { seed: number; start: number; count: number }): Generator<T> {
  if (items.length === 0) throw new Error('nothing to train on: the split is empty');
  let epoch = -1;
  let order: number[] = [];
  for (let k = o.start; k < o.start + o.count; k++) {
    const e = Math.floor(k / items.length);
    if (e !== epoch) {
      epoch = e;
      order = permutation(items.length, Random.fromKey('epoch', o.seed, e));
    }
    yield items[order[k % items.length]!]!;
  }
}

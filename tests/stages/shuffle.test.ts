/**
 * The shuffle buffer: a permutation of its input, the same for the same seed, never holding more
 * than its size, and mixing well enough that an item's output position is spread over the stream.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shuffled } from '../../stages/batch/shuffle.ts';
import { Random } from '../../stages/random.ts';

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

test('a permutation, seeded, and bounded by the buffer', async () => {
  const a = await collect(shuffled(range(1000), 64, Random.fromKey('t', 1)));
  assert.deepEqual([...a].sort((x, y) => x - y), range(1000));
  assert.notDeepEqual(a, range(1000));
  assert.deepEqual(await collect(shuffled(range(1000), 64, Random.fromKey('t', 1))), a);
  assert.notDeepEqual(await collect(shuffled(range(1000), 64, Random.fromKey('t', 2))), a);
  assert.deepEqual(await collect(shuffled(range(10), 1, Random.fromKey('t', 1))), range(10), 'size 1 keeps the order');

  // Bounded: when an item comes out, at most `size` more have been read than emitted.
  let read = 0;
  let emitted = 0;
  const counted = (function* () {
    for (let i = 0; i < 500; i++) {
      read += 1;
      yield i;
    }
  })();
  for await (const _ of shuffled(counted, 16, Random.fromKey('t', 3))) {
    emitted += 1;
    assert.ok(read - emitted <= 16, `read ${read}, emitted ${emitted}`);
  }
  await assert.rejects(shuffled([], 0, Random.fromKey('t', 1)).next(), /positive integer/);
});

test('item 0 leaves a buffer of 8 at a geometric position: mean about 7 over many seeds', async () => {
  // Item 0 sits in the buffer until one of the draws picks its slot (probability 1/8 per new item),
  // so the number of items after it that came out first is geometric with mean 7, and item 0 is
  // emitted at position ~ 7 on average (exactly 7·(1 − (7/8)^(n−8)) for n items; n = 200: 7.0).
  let sum = 0;
  const trials = 2000;
  for (let s = 0; s < trials; s++) sum += (await collect(shuffled(range(200), 8, Random.fromKey('pos', s)))).indexOf(0);
  const mean = sum / trials;
  // The standard deviation of one position is about √56 ≈ 7.5; of the mean over 2000, 0.17.
  assert.ok(Math.abs(mean - 7) < 0.7, `mean position ${mean}`);
});

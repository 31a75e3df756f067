/**
 * Reservoir sampling: uniform over the whole stream (each position's inclusion rate against
 * size / length, over many seeds), in stream order, repeatable by seed, whole when short.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reservoirSample } from '../../stages/batch/sample.ts';
import { Random } from '../../stages/random.ts';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

test('every position of the stream is sampled at size / length, the first ones no more than the last', async () => {
  const [length, size, draws] = [50, 5, 4000];
  const counts = new Array<number>(length).fill(0);
  for (let d = 0; d < draws; d++) for (const i of (await reservoirSample(range(length), size, Random.fromKey('sample', d))).sample) counts[i]! += 1;
  // Binomial(draws, 0.1) per position: mean 400, sd 19; 5 sd either side.
  for (const [i, c] of counts.entries()) assert.ok(Math.abs(c - 400) < 95, `position ${i} drawn ${c} times`);
  // The first fifth of the stream against the last: no bias towards either end.
  const first = counts.slice(0, 10).reduce((a, b) => a + b, 0);
  const last = counts.slice(-10).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(first - last) < 250, `first ${first}, last ${last}`);
});

test('the sample keeps stream order, repeats for a seed, differs across seeds, and is the whole stream when short', async () => {
  const a = await reservoirSample(range(1000), 8, Random.fromKey('s', 1));
  assert.equal(a.seen, 1000);
  assert.deepEqual(a.sample, [...a.sample].sort((x, y) => x - y));
  assert.deepEqual((await reservoirSample(range(1000), 8, Random.fromKey('s', 1))).sample, a.sample);
  assert.notDeepEqual((await reservoirSample(range(1000), 8, Random.fromKey('s', 2))).sample, a.sample);
  assert.deepEqual(await reservoirSample(range(3), 8, Random.fromKey('s', 1)), { sample: [0, 1, 2], seen: 3 });
  await assert.rejects(reservoirSample(range(3), 0, Random.fromKey('s')), /sample size must be a positive integer, got 0/);
});

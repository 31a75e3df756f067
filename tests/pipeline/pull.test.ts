/**
 * `pull`: a credit-bounded source read as an async iterable. Items come in order; each is released
 * when the next is asked for; the source never runs more than its capacity ahead of the loop;
 * breaking out of the loop tears the source down; a source's error reaches the loop.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pull } from '../../pipeline/operators/pull.ts';
import { source } from '../../pipeline/operators/source.ts';

test('items in order, each released when the next is asked for, the source at most its capacity ahead', async () => {
  let produced = 0;
  const items = source(
    'numbers',
    function* () {
      for (let i = 0; i < 50; i++) {
        produced += 1;
        yield i;
      }
    },
    { capacity: 3 },
  );
  const seen: number[] = [];
  for await (const value of pull(items)) {
    seen.push(value);
    // Produced but not yet taken by the loop: the edge's capacity, plus at most the one in hand.
    assert.ok(produced - seen.length <= 3, `produced ${produced} with ${seen.length} taken`);
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i));
});

test('breaking out of the loop ends the source; its error reaches the loop', async () => {
  let closed = false;
  const endless = source('endless', function* () {
    try {
      for (let i = 0; ; i++) yield i;
    } finally {
      closed = true;
    }
  });
  for await (const value of pull(endless)) if (value === 5) break;
  assert.equal(closed, true, 'the generator was closed');

  const failing = source('failing', async function* () {
    yield 1;
    throw new Error('disk on fire');
  });
  const got: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const value of pull(failing)) got.push(value);
    })(),
    /disk on fire/,
  );
  assert.deepEqual(got, [1]);
});

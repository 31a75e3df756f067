/**
 * Virtual-time (marble) tests of the core operators, and an early-unsubscribe test for each: the
 * operator stops its source and releases what it opened.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NEVER, Observable, finalize, map as rxMap, of, timer } from 'rxjs';
import { StageError } from '../../pipeline/errors.ts';
import { batch } from '../../pipeline/operators/batch.ts';
import { expand } from '../../pipeline/operators/expand.ts';
import { map } from '../../pipeline/operators/map.ts';
import { mapAsync } from '../../pipeline/operators/map-async.ts';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { leased, testScheduler } from './helpers.ts';

describe('source', () => {
  it('emits a synchronous iterable at once and completes', () => {
    testScheduler().run(({ expectObservable }) => {
      expectObservable(source('s', () => [1, 2, 3]).pipe(unwrap())).toBe('(abc|)', { a: 1, b: 2, c: 3 });
    });
  });

  it('pulls only as many items as credit allows while nothing is released', () => {
    let pulled = 0;
    function* numbers() {
      for (let i = 0; ; i++) {
        pulled += 1;
        yield i;
      }
    }
    const held: unknown[] = [];
    const sub = source('s', numbers, { capacity: 3 }).subscribe((item) => held.push(item));
    assert.equal(held.length, 3);
    assert.equal(pulled, 3);
    sub.unsubscribe();
  });

  it('unsubscribes early: the generator is closed (its finally runs)', () => {
    let closed = false;
    function* forever() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        closed = true;
      }
    }
    testScheduler().run(({ expectObservable }) => {
      const slow = source('s', forever, { capacity: 1 }).pipe(mapAsync('wait', (x: number) => timer(2).pipe(rxMap(() => x))), unwrap());
      expectObservable(slow, '^----!').toBe('--a-b', { a: 0, b: 1 });
    });
    assert.equal(closed, true);
  });

  it('turns a throwing iterator into a StageError naming the stage and element', () => {
    function* broken() {
      yield 1;
      throw new Error('disk on fire');
    }
    testScheduler().run(({ expectObservable }) => {
      expectObservable(source('read', broken).pipe(unwrap())).toBe(
        '(a#)',
        { a: 1 },
        new StageError('read', { index: 1 }, new Error('disk on fire')),
      );
    });
  });
});

describe('map', () => {
  it('transforms each element and releases every input', () => {
    const released: string[] = [];
    testScheduler().run(({ cold, expectObservable }) => {
      const out = leased(cold<string>('-a-b-c|'), released).pipe(map('upper', (s: string) => s.toUpperCase()), unwrap());
      expectObservable(out).toBe('-A-B-C|', { A: 'A', B: 'B', C: 'C' });
    });
    assert.deepEqual(released, ['a', 'b', 'c']);
  });

  it('fail policy: stops with a StageError naming the clip', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const clips = { a: { id: 'clip-a' }, b: { id: 'clip-b' } };
      const out = leased(cold('-a-b-a|', clips)).pipe(
        map('check', (c: { id: string }) => {
          if (c.id === 'clip-b') throw new Error('bad frame');
          return c.id;
        }),
        unwrap(),
      );
      expectObservable(out).toBe('-x-#', { x: 'clip-a' }, new StageError('check', { clip: 'clip-b' }, new Error('bad frame')));
    });
  });

  it('skip policy: drops the failing element, releases it and goes on', () => {
    const released: number[] = [];
    testScheduler().run(({ cold, expectObservable }) => {
      const out = leased(cold('-a-b-c|', { a: 1, b: 2, c: 3 }), released).pipe(
        map(
          'invert',
          (x: number) => {
            if (x === 2) throw new Error('two');
            return 1 / x;
          },
          { onError: 'skip' },
        ),
        unwrap(),
      );
      expectObservable(out).toBe('-a---c|', { a: 1, c: 1 / 3 });
    });
    assert.deepEqual(released, [1, 2, 3]);
  });

  it('unsubscribes early and stops the source', () => {
    testScheduler().run(({ hot, expectObservable, expectSubscriptions }) => {
      const input = hot<string>('-a-b-c-d|');
      expectObservable(leased(input).pipe(map('id', (x: string) => x), unwrap()), '^---!').toBe('-a-b');
      expectSubscriptions(input.subscriptions).toBe('^---!');
    });
  });
});

describe('mapAsync', () => {
  it('runs up to `concurrency` inner jobs at once, emitting in completion order', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const out = leased(cold<string>('abc|')).pipe(
        mapAsync('slow', (x: string) => cold('---(r|)', { r: x.toUpperCase() }), { concurrency: 2 }),
        unwrap(),
      );
      // a and b start at once; c waits for a free slot (frame 3) and ends at frame 6.
      expectObservable(out).toBe('---AB-(C|)', { A: 'A', B: 'B', C: 'C' });
    });
  });

  it('ordered: results leave in input order, a late one holding back those after it and its place in the concurrency', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const delays: Record<string, string> = { a: '-----(r|)', b: '-(r|)', c: '---------(r|)', d: '-(r|)' };
      const out = leased(cold<string>('abcd|')).pipe(
        mapAsync('decode', (x: string) => cold(delays[x]!, { r: x.toUpperCase() }), { concurrency: 2, ordered: true }),
        unwrap(),
      );
      // a (5 frames) and b (1) start at once; b waits for a and keeps its slot, so c and d start
      // only when both have left (frame 5); d, done first, waits for c (frame 14).
      expectObservable(out).toBe('-----(AB)-----(CD|)', { A: 'A', B: 'B', C: 'C', D: 'D' });
    });
  });

  it('ordered, skip policy: a failed element leaves a gap in place, the rest keep their order', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const out = leased(cold<string>('abc|')).pipe(
        mapAsync('decode', (x: string) => (x === 'b' ? cold('-#', {}, new Error('corrupt')) : cold(x === 'a' ? '---(r|)' : '-(r|)', { r: x })), { concurrency: 3, ordered: true, onError: 'skip' }),
        unwrap(),
      );
      expectObservable(out).toBe('---(ac|)');
    });
  });

  it('an inner that completes without a value drops the element', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const out = leased(cold<string>('abc|')).pipe(
        mapAsync('odd', (x: string) => (x === 'b' ? cold('-|') : cold('-(r|)', { r: x }))),
        unwrap(),
      );
      expectObservable(out).toBe('-a-(c|)');
    });
  });

  it('holds results in flight to its capacity: later jobs wait for credit, not the other way round', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      // Results are released 5 frames after they are emitted; capacity 1 lets one out at a time.
      const out = leased(cold<string>('(abc|)')).pipe(
        mapAsync('fast', (x: string) => cold('(r|)', { r: x }), { concurrency: 3, capacity: 1 }),
        mapAsync('slow-sink', (x: string) => cold('-----(r|)', { r: x })),
        unwrap(),
      );
      expectObservable(out).toBe('-----a----b----(c|)');
    });
  });

  it('unsubscribes early: stops the source and cancels running inner jobs', () => {
    let innerCancelled = 0;
    testScheduler().run(({ hot, cold, expectObservable, expectSubscriptions }) => {
      const input = hot<string>('ab------|');
      const out = leased(input).pipe(
        mapAsync('slow', (x: string) => cold('-----(r|)', { r: x }).pipe(finalize(() => (innerCancelled += 1))), { concurrency: 2 }),
        unwrap(),
      );
      expectObservable(out, '^--!').toBe('---');
      expectSubscriptions(input.subscriptions).toBe('^--!');
    });
    assert.equal(innerCancelled, 2);
  });
});

describe('expand', () => {
  it('turns each input into its outputs, in order', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      // A group such as (xy) spans as many frames as it has characters, hence the wide spacing.
      const out = leased(cold('a-----(b|)', { a: 2, b: 3 })).pipe(
        expand('repeat', (n: number) => Array.from({ length: n }, (_, i) => `${n}.${i}`)),
        unwrap(),
      );
      expectObservable(out).toBe('(xy)--(uvw|)', { x: '2.0', y: '2.1', u: '3.0', v: '3.1', w: '3.2' });
    });
  });

  it('pulls outputs only against credit and releases the input when exhausted', () => {
    const released: number[] = [];
    let produced = 0;
    function* many(n: number) {
      for (let i = 0; i < n; i++) {
        produced += 1;
        yield i;
      }
    }
    testScheduler().run(({ cold, expectObservable }) => {
      const out = leased(cold('a|', { a: 1000 }), released).pipe(
        expand('many', many, { capacity: 2 }),
        mapAsync('slow', (x: number) => cold('--(r|)', { r: x })),
        unwrap(),
      );
      // After 5 frames the slow sink has finished two outputs; capacity 2 bounds what was produced.
      expectObservable(out, '^----!').toBe('--a-b', { a: 0, b: 1 });
    });
    assert.ok(produced <= 4, `produced ${produced}`);
    assert.deepEqual(released, []);
  });

  it('holds its input until every output taken from it is released, in any order', () => {
    const released: string[] = [];
    const held: Array<{ value: number; release(): void }> = [];
    leased(of('ab'), released)
      .pipe(expand('chars', (s: string) => [...s].map((c) => c.charCodeAt(0)), { capacity: 4 }))
      .subscribe((item) => held.push(item));
    assert.deepEqual(held.map((h) => h.value), [97, 98]);
    assert.deepEqual(released, [], 'exhausted, but both outputs are still held');
    held[1]!.release();
    assert.deepEqual(released, []);
    held[0]!.release();
    assert.deepEqual(released, ['ab']);
  });

  it('skip policy: an input whose expansion throws is dropped after what it yielded', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      function* upTo(n: number) {
        yield n * 10;
        if (n === 2) throw new Error('corrupt entry');
        yield n * 10 + 1;
      }
      const out = leased(cold('a-----b-----(c|)', { a: 1, b: 2, c: 3 })).pipe(expand('entries', upTo, { onError: 'skip' }), unwrap());
      expectObservable(out).toBe('(xy)--z-----(uv|)', { x: 10, y: 11, z: 20, u: 30, v: 31 });
    });
  });

  it('unsubscribes early: stops the source and closes the current iterator', () => {
    let closed = false;
    function* endless() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        closed = true;
      }
    }
    testScheduler().run(({ hot, cold, expectObservable, expectSubscriptions }) => {
      const input = hot<string>('a-----|');
      const out = leased(input).pipe(
        expand('endless', endless, { capacity: 1 }),
        mapAsync('slow', (x: number) => cold('-(r|)', { r: x })),
        unwrap(),
      );
      expectObservable(out, '^--!').toBe('-ab', { a: 0, b: 1 });
      expectSubscriptions(input.subscriptions).toBe('^--!');
    });
    assert.equal(closed, true);
  });
});

describe('batch', () => {
  it('groups inputs and emits the shorter last group', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const out = leased(cold<string>('abcde|')).pipe(batch('pairs', 2, (xs: string[]) => xs.join('')), unwrap());
      expectObservable(out).toBe('-x-y-(z|)', { x: 'ab', y: 'cd', z: 'e' });
    });
  });

  it('drops the partial last group when asked', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const out = leased(cold<string>('abcde|')).pipe(batch('pairs', 2, (xs: string[]) => xs.join(''), { dropPartial: true }), unwrap());
      expectObservable(out).toBe('-x-y-|', { x: 'ab', y: 'cd' });
    });
  });

  it('unsubscribes early and stops the source', () => {
    testScheduler().run(({ hot, expectObservable, expectSubscriptions }) => {
      const input = hot<string>('abcdef|');
      expectObservable(leased(input).pipe(batch('triples', 3, (xs: string[]) => xs.join('')), unwrap()), '^---!').toBe('--x', { x: 'abc' });
      expectSubscriptions(input.subscriptions).toBe('^---!');
    });
  });
});

describe('unwrap', () => {
  it('releases each item after the subscriber handled it', () => {
    const released: number[] = [];
    const seen: Array<[number, number]> = [];
    leased(new Observable<number>((s) => (s.next(1), s.next(2), s.complete())), released)
      .pipe(unwrap())
      .subscribe((x) => seen.push([x, released.length]));
    assert.deepEqual(seen, [
      [1, 0],
      [2, 1],
    ]);
    assert.deepEqual(released, [1, 2]);
  });

  it('unsubscribes early and stops the source', () => {
    testScheduler().run(({ hot, expectObservable, expectSubscriptions }) => {
      const input = hot<string>('-a-b-c|');
      expectObservable(leased(input).pipe(unwrap()), '^--!').toBe('-a-');
      expectSubscriptions(input.subscriptions).toBe('^--!');
    });
  });

  it('passes NEVER through without completing', () => {
    testScheduler().run(({ expectObservable }) => {
      expectObservable(leased(NEVER).pipe(unwrap())).toBe('');
    });
  });
});

describe('source under the skip policy', () => {
  const read = (fails: readonly boolean[]) =>
    new Promise<{ values: number[]; error?: Error }>((resolve) => {
      const values: number[] = [];
      source(
        'records',
        function* ({ skip }) {
          for (const [i, bad] of fails.entries()) {
            if (bad) skip({ index: i }, new Error(`record ${i} is damaged`));
            else yield i;
          }
        },
        { onError: 'skip' },
      )
        .pipe(unwrap())
        .subscribe({ next: (v) => values.push(v), error: (error: Error) => resolve({ values, error }), complete: () => resolve({ values }) });
    });

  it('a skipped element costs that element alone', async () => {
    assert.deepEqual(await read([false, true, false]), { values: [0, 2] });
  });

  it('a source whose every element failed is an error, not an empty success', async () => {
    const { values, error } = await read([true, true, true]);
    assert.deepEqual(values, []);
    assert.ok(error instanceof StageError);
    assert.match(error.message, /^stage "records": every element failed \(3 skipped\), nothing was read$/);
  });

  it('an empty source with nothing skipped completes', async () => {
    assert.deepEqual(await read([]), { values: [] });
  });
});

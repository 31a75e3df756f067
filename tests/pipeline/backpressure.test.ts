/**
 * Backpressure: a source of 100 000 items meets a consumer taking 1 ms per item. On every edge the
 * number of items in flight (emitted by the producer, not yet finished by the consumer) is measured
 * by probes independent of the stages' own counters, and must never exceed the edge's capacity.
 * The same probes on a plain RxJS mergeMap chain show it fails that assertion.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { Observable, concatMap, finalize, from, mergeMap, of, range, tap, timer, map as rxMap, type OperatorFunction } from 'rxjs';
import type { Leased } from '../../pipeline/credit.ts';
import { expand } from '../../pipeline/operators/expand.ts';
import { map } from '../../pipeline/operators/map.ts';
import { mapAsync } from '../../pipeline/operators/map-async.ts';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { Telemetry, metered } from '../../pipeline/telemetry.ts';
import { testScheduler } from './helpers.ts';

const N = 100_000;
const CAPACITY = 8;

/** Counts items in flight on one edge: +1 when emitted, −1 when the consumer releases it. */
class EdgeProbe {
  inFlight = 0;
  max = 0;
  constructor(readonly name: string) {}
  enter(): void {
    this.inFlight += 1;
    this.max = Math.max(this.max, this.inFlight);
  }
  leave(): void {
    this.inFlight -= 1;
  }
}

function probe<T>(edge: EdgeProbe): OperatorFunction<Leased<T>, Leased<T>> {
  return (upstream) =>
    new Observable<Leased<T>>((subscriber) =>
      upstream.subscribe({
        next: (item) => {
          edge.enter();
          let left = false;
          subscriber.next({
            value: item.value,
            release: () => {
              if (!left) {
                left = true;
                edge.leave();
              }
              item.release();
            },
          });
        },
        error: (e: unknown) => subscriber.error(e),
        complete: () => subscriber.complete(),
      }),
    );
}

function assertBounded(edges: EdgeProbe[], capacity: number): void {
  for (const e of edges) assert.ok(e.max <= capacity, `edge ${e.name}: ${e.max} items in flight, capacity ${capacity}`);
}

const edgeNames = ['source→map', 'map→parallel', 'parallel→expand', 'expand→map', 'map→consumer'];

describe('backpressure', () => {
  it(`bounds every edge with ${N} items and a 1 ms consumer (virtual time)`, () => {
    const edges = edgeNames.map((n) => new EdgeProbe(n));
    const telemetry = new Telemetry();
    let consumed = 0;
    testScheduler().run(({ expectObservable }) => {
      const graph = metered(
        telemetry,
        source('numbers', () => Array.from({ length: N }, (_, i) => i), { capacity: CAPACITY }).pipe(
          probe(edges[0]!),
          map('inc', (x: number) => x + 1, { capacity: CAPACITY }),
          probe(edges[1]!),
          mapAsync('parallel', (x: number) => of(x), { concurrency: 4, capacity: CAPACITY }),
          probe(edges[2]!),
          expand('one-to-one', (x: number) => [x], { capacity: CAPACITY }),
          probe(edges[3]!),
          map('dec', (x: number) => x - 1, { capacity: CAPACITY }),
          probe(edges[4]!),
          mapAsync('consumer', (x: number) => timer(1).pipe(rxMap(() => x)), { capacity: CAPACITY }),
          unwrap(),
          tap(() => (consumed += 1)),
          rxMap(() => 0),
          rxMap(() => 'x'),
        ),
      );
      // The last item leaves the consumer at frame N, and the stream completes with it.
      expectObservable(graph.pipe(concatMap(() => []))).toBe(`${N}ms |`);
    });
    assert.equal(consumed, N);
    assertBounded(edges, CAPACITY);
    // The stages' own counters agree with the probes.
    for (const stats of telemetry.snapshot()) assert.ok(stats.highWater <= CAPACITY, `${stats.stage} high water ${stats.highWater}`);
    assert.equal(telemetry.snapshot().find((s) => s.stage === 'numbers')?.items, N);
  });

  it('a plain RxJS mergeMap chain fails the same assertion', () => {
    const edges = edgeNames.map((n) => new EdgeProbe(n));
    // Each plain stage: the edge's item enters when emitted, leaves when the next stage finished it.
    const plain = <T, R>(edge: EdgeProbe, inner: (x: T) => Observable<R>, concurrency = Infinity): OperatorFunction<T, R> =>
      (upstream) =>
        upstream.pipe(
          tap(() => edge.enter()),
          mergeMap((x) => inner(x).pipe(finalize(() => edge.leave())), concurrency),
        );
    testScheduler().run(({ expectObservable }) => {
      const graph = range(0, N).pipe(
        plain(edges[0]!, (x: number) => of(x + 1)),
        plain(edges[1]!, (x: number) => of(x), 4),
        plain(edges[2]!, (x: number) => from([x])),
        plain(edges[3]!, (x: number) => of(x - 1)),
        plain(edges[4]!, (x: number) => timer(1).pipe(rxMap(() => x)), 1),
      );
      expectObservable(graph.pipe(concatMap(() => []))).toBe(`${N}ms |`);
    });
    assert.throws(() => assertBounded(edges, CAPACITY), /items in flight/);
    // The consumer's edge held the whole stream at once.
    assert.equal(edges[4]!.max, N);
  });

  it('bounds every edge with async stages and a real 1 ms consumer (real time)', async () => {
    const n = 3000;
    const edges = edgeNames.map((name) => new EdgeProbe(name));
    async function* numbers() {
      for (let i = 0; i < n; i++) {
        if (i % 100 === 0) await sleep(0);
        yield i;
      }
    }
    const out: number[] = [];
    await new Promise<void>((resolve, reject) => {
      source('numbers', numbers, { capacity: CAPACITY })
        .pipe(
          probe(edges[0]!),
          mapAsync('async', async (x: number) => x, { capacity: CAPACITY }),
          probe(edges[1]!),
          mapAsync('parallel', (x: number) => sleep(Math.random() * 2).then(() => x), { concurrency: 4, capacity: CAPACITY }),
          probe(edges[2]!),
        )
        .pipe(
          expand(
            'async-expand',
            async function* (x: number) {
              yield x;
            },
            { capacity: CAPACITY },
          ),
          probe(edges[3]!),
          map('id', (x: number) => x, { capacity: CAPACITY }),
          probe(edges[4]!),
          mapAsync('consumer', (x: number) => sleep(1).then(() => x)),
          unwrap(),
        )
        .subscribe({ next: (x: number) => out.push(x), error: reject, complete: resolve });
    });
    assert.equal(out.length, n);
    assert.deepEqual([...out].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
    assertBounded(edges, CAPACITY);
    // The slow consumer, not the producers, set the pace: the edges filled up to their capacity.
    assert.equal(edges[4]!.max, CAPACITY);
  });
});

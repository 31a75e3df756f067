/** Test helpers for leased streams: wrap plain marbles as leased items and record their releases. */
import assert from 'node:assert/strict';
import { Observable, map as rxMap } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import type { Leased } from '../../pipeline/credit.ts';

export function testScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => assert.deepStrictEqual(actual, expected));
}

/** Wraps each value of a plain stream as a leased item whose release is recorded in `released`. */
export function leased<T>(values: Observable<T>, released: T[] = []): Observable<Leased<T>> {
  return values.pipe(rxMap((value) => ({ value, release: () => void released.push(value) })));
}

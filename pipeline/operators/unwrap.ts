/**
 * `unwrap`: the end of a leased chain. Emits each item's plain value to an ordinary RxJS subscriber
 * and releases its credit when that subscriber's `next` returns, so a synchronous consumer (or one
 * that ends the chain with an async `mapAsync` sink before `unwrap`) sets the pace of the graph.
 */
import { Observable, type OperatorFunction } from 'rxjs';
import type { Leased } from '../credit.ts';

export function unwrap<T>(): OperatorFunction<Leased<T>, T> {
  return (upstream) =>
    new Observable<T>((subscriber) =>
      upstream.subscribe({
        next: (item) => {
          subscriber.next(item.value);
          item.release();
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      }),
    );
}

/**
 * `pull`: a source read as an async iterable, for code that is easier to write as a loop than as
 * operators (epochs over a dataset, a shuffle buffer). Credit still bounds the source: an item is
 * released when the next one is asked for, or when the loop ends, so at most the edge's capacity
 * plus the item in hand exist at once. Breaking out of the loop (or an error in it) unsubscribes,
 * which tears the source down like any other consumer leaving.
 *
 * Items are released while the loop may still hold their values: use it on sources whose values
 * are owned by the consumer (decoded clips), not on pooled buffers that are recycled on release.
 */
import type { Observable, Subscription } from 'rxjs';
import type { Leased } from '../credit.ts';

/**
 * @example
 * for await (const clip of pull(dataset.open({ split: 'train' }).clips)) buffer.push(clip);
 */
export function pull<T>(source: Observable<Leased<T>>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const queue: Array<Leased<T>> = [];
      let subscription: Subscription | undefined;
      let held: Leased<T> | undefined;
      let done = false;
      let failed = false;
      let failure: unknown;
      let wake: (() => void) | undefined;
      const notify = (): void => {
        const w = wake;
        wake = undefined;
        w?.();
      };
      const finish = (): void => {
        held?.release();
        held = undefined;
        for (const item of queue.splice(0)) item.release();
        done = true;
        subscription?.unsubscribe();
      };
      return {
        async next(): Promise<IteratorResult<T>> {
          subscription ??= source.subscribe({
            next: (item) => {
              queue.push(item);
              notify();
            },
            error: (err: unknown) => {
              failed = true;
              failure = err;
              done = true;
              notify();
            },
            complete: () => {
              done = true;
              notify();
            },
          });
          held?.release();
          held = undefined;
          while (queue.length === 0 && !done) await new Promise<void>((resolve) => (wake = resolve));
          const item = queue.shift();
          if (item) {
            held = item;
            return { value: item.value, done: false };
          }
          finish();
          if (failed) throw failure;
          return { value: undefined, done: true };
        },
        async return(): Promise<IteratorResult<T>> {
          finish();
          return { value: undefined, done: true };
        },
      };
    },
  };
}

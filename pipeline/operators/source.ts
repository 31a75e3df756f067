/**
 * `source`: starts a graph from an iterable or async iterable, pulling the next item only when the
 * output edge has credit. A synchronous iterable is drained synchronously (deterministic under RxJS
 * virtual time); an async one has at most one `next()` outstanding. Unsubscribing calls the
 * iterator's `return()`, so a generator's `finally` blocks release what it opened. An element that
 * fails inside the source goes through `context.skip`, which applies the stage's error policy.
 */
import { Observable } from 'rxjs';
import type { Leased } from '../credit.ts';
import { StageError, type ElementRef } from '../errors.ts';
import { namedSource, type Source, type StageOptions } from '../stage.ts';
import { Outlet, closeIterator, openIterator, type AnyIterator } from './internal.ts';

export interface SourceOptions extends Omit<StageOptions<never>, 'describe'> {
  /** Chains the source reads (a shuffle re-reading a dataset each epoch), for the graph's description. */
  readonly reads?: readonly Observable<unknown>[];
}

/** What a source's `open` may use while it produces. */
export interface SourceContext {
  /**
   * One element inside the source failed (a corrupt video in an archive, a record with a bad
   * CRC): under the `skip` policy it is logged and counted and the source goes on; under `fail`
   * (the default) this throws the StageError, naming the element, that stops the run.
   */
  skip(element: ElementRef, cause: unknown): void;
}

/**
 * @example
 * source('numbers', () => [1, 2, 3]).pipe(map('double', (x) => 2 * x), unwrap())
 * @param name stage name in telemetry and errors.
 * @param open called on each subscription; returns the items (a generator restarts per subscriber).
 * @returns a source that produces only against credit.
 */
export function source<T>(name: string, open: (context: SourceContext) => Iterable<T> | AsyncIterable<T>, options: SourceOptions = {}): Source<T> {
  return namedSource(
    name,
    new Observable<Leased<T>>((subscriber) => {
      let opened: AnyIterator<T> | undefined;
      let pending = false;
      let done = false;
      let index = 0;

      const outlet: Outlet<T> = new Outlet<T>(name, subscriber, options, () => {
        while (!done && !pending && !outlet.closed && opened) {
          if (!outlet.gate.tryAcquire()) return;
          if (opened.isAsync) {
            pending = true;
            (opened.iterator as AsyncIterator<T>).next().then(
              (r) => {
                pending = false;
                if (outlet.closed) return;
                if (r.done) return finish();
                outlet.emit(r.value);
                index += 1;
                outlet.pump.run();
              },
              (err: unknown) => {
                pending = false;
                done = true;
                outlet.fail(err, { index });
              },
            );
            return;
          }
          let r: IteratorResult<T>;
          try {
            r = (opened.iterator as Iterator<T>).next();
          } catch (err) {
            done = true;
            outlet.fail(err, { index });
            return;
          }
          if (r.done) return finish();
          outlet.emit(r.value);
          index += 1;
        }
      });

      function finish(): void {
        done = true;
        outlet.gate.unacquire();
        outlet.complete();
      }

      try {
        opened = openIterator(
          open({
            skip(element, cause) {
              if (outlet.policy !== 'skip') throw cause instanceof StageError ? cause : new StageError(name, element, cause);
              outlet.skip(cause, element);
            },
          }),
        );
      } catch (err) {
        outlet.fail(err, {});
        return;
      }
      outlet.pump.run();

      return () => {
        const it = opened;
        opened = undefined;
        if (!done) {
          done = true;
          outlet.meter.finish();
        }
        closeIterator(it);
      };
    }),
    { capacity: options.capacity, reads: options.reads },
  );
}

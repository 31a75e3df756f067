/**
 * `mapAsync`: the bounded counterpart of `mergeMap`. Each input is turned into at most one output
 * by a function returning a Promise or Observable; up to `concurrency` run at once. A job starts
 * only when the output edge has credit for its result, and its input is released once the result
 * was emitted (or dropped), so items queued here are still counted on the upstream edge and the
 * upstream stops producing when they reach its capacity.
 *
 * An inner that completes without a value drops the element (a filter). Results leave in
 * completion order, as with `mergeMap`.
 */
import { Observable, from, type ObservableInput, type Subscription } from 'rxjs';
import type { Leased } from '../credit.ts';
import { named, type Stage, type StageOptions } from '../stage.ts';
import { Outlet, checkPositiveInteger, defaultDescribe } from './internal.ts';

export interface MapAsyncOptions<In, Out = unknown> extends StageOptions<In> {
  /** Most elements processed at once. Default 1. */
  readonly concurrency?: number;
  /** Called when the consumer releases a result (it is done with it). */
  readonly onRelease?: (value: Out) => void;
  /**
   * Results leave in input order rather than completion order (a result waits for those before
   * it, holding its place in the concurrency). Default false.
   */
  readonly ordered?: boolean;
}

/**
 * @example
 * mapAsync('fetch-meta', (url: string) => fetchJson(url), { concurrency: 4 })
 * @param name stage name in telemetry and errors.
 * @param project returns a Promise or Observable yielding at most one value for the element.
 * @returns a stage with at most `capacity` results in flight downstream.
 */
export function mapAsync<In, Out>(
  name: string,
  project: (value: In, index: number) => ObservableInput<Out>,
  options: MapAsyncOptions<In, Out> = {},
): Stage<In, Out> {
  return mapCore(name, { async: project }, options);
}

/** The shared core of `map` and `mapAsync`: a synchronous function skips the inner subscription. */
export function mapCore<In, Out>(
  name: string,
  project: { readonly async: (value: In, index: number) => ObservableInput<Out> } | { readonly sync: (value: In, index: number) => Out },
  options: MapAsyncOptions<In, Out>,
): Stage<In, Out> {
  const concurrency = options.concurrency ?? 1;
  checkPositiveInteger(name, 'concurrency', concurrency);
  const describe = options.describe ?? defaultDescribe;

  return named(name, (upstream: Observable<Leased<In>>) =>
    new Observable<Leased<Out>>((subscriber) => {
      // Items wait in arrival order and start in that order, so an item's index is the number
      // started before it (no wrapper object per item).
      const queue: Array<Leased<In>> = [];
      const inners = new Set<Subscription>();
      let started = 0;
      let active = 0;
      // Ordered results: finished jobs waiting for the ones before them, by index.
      const waiting = new Map<number, { readonly item: Leased<In>; has: boolean; value?: Out }>();
      let nextOut = 0;
      let upstreamDone = false;
      let stopped = false;

      const outlet: Outlet<Out> = new Outlet<Out>(name, subscriber, options, () => {
        while (!stopped && queue.length > 0 && active < concurrency) {
          if (!outlet.gate.tryAcquire()) return;
          start(queue.shift()!, started++);
        }
        if (!stopped && upstreamDone && queue.length === 0 && active === 0) {
          stopped = true;
          outlet.complete();
        }
      });

      /** Ends a job: its input's credit goes back, and its output credit too when nothing was emitted. */
      function finished(item: Leased<In>, emitted: boolean): void {
        active -= 1;
        if (!emitted) outlet.gate.refund();
        item.release();
        outlet.pump.run();
      }

      /** Applies the error policy to a failed element; true when it was skipped and the job ends. */
      function failedElement(err: unknown, item: Leased<In>, index: number): boolean {
        if (outlet.failed(err, describe(item.value, index))) return true;
        stopped = true;
        return false;
      }

      // The synchronous path makes no closure per element (see `Lease` in credit.ts for why).
      function start(item: Leased<In>, index: number): void {
        active += 1;
        if ('sync' in project) {
          let value: Out;
          try {
            value = project.sync(item.value, index);
          } catch (err) {
            if (!stopped && failedElement(err, item, index)) finished(item, false);
            return;
          }
          outlet.emit(value);
          finished(item, true);
          return;
        }
        startAsync(project.async, item, index);
      }

      function startAsync(fn: (value: In, index: number) => ObservableInput<Out>, item: Leased<In>, index: number): void {
        let emitted = false;
        let settled = false;
        let inner: Subscription | undefined;
        const slot = options.ordered ? { item, has: false, value: undefined as Out | undefined } : undefined;
        const settle = (): void => {
          if (settled) return;
          settled = true;
          if (inner) inners.delete(inner);
          if (!slot) return finished(item, emitted);
          // In input order: this result (or its absence) waits for those before it.
          waiting.set(index, slot);
          flush();
        };
        const onError = (err: unknown): void => {
          if (settled || stopped) return;
          if (!failedElement(err, item, index)) return;
          if (slot) slot.has = false;
          settle();
        };
        let results: Observable<Out>;
        try {
          results = from(fn(item.value, index));
        } catch (err) {
          onError(err);
          return;
        }
        inner = results.subscribe({
          next: (value) => {
            if (settled || stopped) return;
            if (emitted || slot?.has) return onError(new Error('the function returned more than one value for one element'));
            if (slot) {
              slot.has = true;
              slot.value = value;
              return;
            }
            emitted = true;
            emit(value);
          },
          error: onError,
          complete: settle,
        });
        if (settled) inner.unsubscribe();
        else inners.add(inner);
      }

      function emit(value: Out): void {
        const onRelease = options.onRelease;
        outlet.emit(value, onRelease && (() => onRelease(value)));
      }

      /** Emits the finished results that are next in input order. */
      function flush(): void {
        for (let slot = waiting.get(nextOut); slot && !stopped; slot = waiting.get(nextOut)) {
          waiting.delete(nextOut++);
          if (slot.has) emit(slot.value as Out);
          finished(slot.item, slot.has);
        }
      }

      const upstreamSubscription = outlet.subscribeInput(
        upstream,
        (item) => queue.push(item),
        () => (upstreamDone = true),
        () => (stopped = true),
      );

      return () => {
        stopped = true;
        upstreamSubscription.unsubscribe();
        for (const inner of inners) inner.unsubscribe();
        inners.clear();
        outlet.meter.finish();
      };
    }),
    { capacity: options.capacity, params: concurrency > 1 ? { concurrency } : {} },
  );
}

/**
 * `batch`: groups `size` inputs into one output built by `combine` (clips into an Arrow frame
 * batch). Inputs are released as they are absorbed, so the stage holds at most `size` inputs of its
 * own beyond what its edges count; once a full group waits for output credit, further inputs stay
 * queued unreleased and the upstream stops. The last, shorter group is emitted unless
 * `dropPartial` is set.
 */
import { Observable } from 'rxjs';
import type { Leased } from '../credit.ts';
import { named, type Stage, type StageOptions } from '../stage.ts';
import { Outlet, checkPositiveInteger } from './internal.ts';

export interface BatchOptions<In, Out = unknown> extends StageOptions<In> {
  /** Drop a final group smaller than `size` instead of emitting it. Default false. */
  readonly dropPartial?: boolean;
  /**
   * Called with an output once downstream has released it (and, through `expand`, every view taken
   * from it): `combine` may then reuse its buffers. Only for consumers that keep nothing of an item
   * after releasing it, which is the credit protocol's contract. Default: none.
   */
  readonly recycle?: (out: Out) => void;
}

/**
 * @example
 * batch('batch-clips', 8, (clips: Clip[]) => encodeFrameBatch(spec, clips))
 * @param name stage name in telemetry and errors.
 * @param size inputs per output (integer ≥ 1).
 * @param combine builds one output from a group; a throw is handled by the `onError` policy.
 * @returns a stage emitting one output per `size` inputs.
 */
export function batch<In, Out>(name: string, size: number, combine: (values: In[]) => Out, options: BatchOptions<In, Out> = {}): Stage<In, Out> {
  checkPositiveInteger(name, 'size', size);

  return named(name, (upstream: Observable<Leased<In>>) =>
    new Observable<Leased<Out>>((subscriber) => {
      const queue: Array<Leased<In>> = [];
      let group: In[] = [];
      let groups = 0;
      let upstreamDone = false;
      let stopped = false;

      const outlet: Outlet<Out> = new Outlet<Out>(name, subscriber, options, () => {
        while (!stopped) {
          while (group.length < size && queue.length > 0) {
            const item = queue.shift()!;
            group.push(item.value);
            item.release();
          }
          const last = upstreamDone && queue.length === 0;
          const ready = group.length === size || (last && group.length > 0 && !options.dropPartial);
          if (!ready) break;
          if (!outlet.gate.tryAcquire()) return;
          const values = group;
          group = [];
          const index = groups++;
          let out: Out;
          try {
            out = combine(values);
          } catch (err) {
            const goesOn = outlet.failed(err, { index });
            if (!goesOn) {
              stopped = true;
              return;
            }
            outlet.gate.refund();
            continue;
          }
          const recycle = options.recycle;
          outlet.emit(out, recycle && (() => recycle(out)));
        }
        if (!stopped && upstreamDone && queue.length === 0 && (group.length === 0 || options.dropPartial)) {
          stopped = true;
          outlet.complete();
        }
      });

      const upstreamSubscription = outlet.subscribeInput(
        upstream,
        (item) => queue.push(item),
        () => (upstreamDone = true),
        () => (stopped = true),
      );

      return () => {
        stopped = true;
        upstreamSubscription.unsubscribe();
        group = [];
        outlet.meter.finish();
      };
    }),
    { capacity: options.capacity, params: { size } },
  );
}

/**
 * Internals shared by the core operators: the output side of a stage (credit gate, meter, error
 * policy) and option validation. Operators own their input side; everything about emitting lives
 * here once.
 */
import type { Observable, Subscriber, Subscription } from 'rxjs';
import { CreditGate, Pump, type Leased } from '../credit.ts';
import { ERROR_POLICIES, StageError, lostBy, type ElementRef, type ErrorPolicy } from '../errors.ts';
import { DEFAULT_CAPACITY, type StageOptions } from '../stage.ts';
import { stageMeter, type StageMeter } from '../telemetry.ts';

export function defaultDescribe(value: unknown, index: number): ElementRef {
  if (value !== null && typeof value === 'object') {
    const v = value as { id?: unknown; clip?: unknown; file?: unknown };
    if (typeof v.id === 'string') return { clip: v.id };
    if (typeof v.clip === 'string') return { clip: v.clip };
    if (typeof v.file === 'string') return { file: v.file };
  }
  return { index };
}

export function checkPositiveInteger(stage: string, option: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`stage "${stage}": option ${option} must be an integer ≥ 1, got ${String(value)}`);
  }
}

/** The output edge of one stage subscription: emits under credit, meters, applies the error policy. */
export class Outlet<Out> {
  readonly gate: CreditGate;
  readonly meter: StageMeter;
  readonly pump: Pump;
  readonly policy: ErrorPolicy;
  private readonly sizeOf: ((value: unknown) => number) | undefined;
  /** Outputs and skipped elements of this subscription. */
  private emitted = 0;
  private skipped = 0;
  private readonly measure: ((value: Out) => Readonly<Record<string, number>>) | undefined;

  constructor(
    readonly stage: string,
    private readonly subscriber: Subscriber<Leased<Out>>,
    options: StageOptions<never>,
    loop: () => void,
  ) {
    const policy = options.onError ?? 'fail';
    if (!ERROR_POLICIES.includes(policy)) {
      throw new RangeError(`stage "${stage}": option onError must be one of ${ERROR_POLICIES.join(', ')}, got ${String(policy)}`);
    }
    this.policy = policy;
    this.sizeOf = options.sizeOf;
    this.measure = options.measure as ((value: Out) => Readonly<Record<string, number>>) | undefined;
    this.pump = new Pump(loop);
    this.gate = new CreditGate(options.capacity ?? DEFAULT_CAPACITY, this.pump.run);
    this.meter = stageMeter(stage, this.gate);
  }

  get closed(): boolean {
    return this.subscriber.closed;
  }

  /** Emits a value under a credit already taken with `gate.tryAcquire()`; `onRelease` as in `CreditGate.lease`. */
  emit(value: Out, onRelease?: () => void): void {
    this.emitted += 1;
    this.meter.emitted(value, this.sizeOf);
    if (this.measure) this.meter.measure(this.measure(value));
    this.subscriber.next(this.gate.lease(value, onRelease));
  }

  /**
   * Ends the stage's output. Under `skip`, a stage whose every element failed has produced nothing:
   * that is the run's failure, not an empty success.
   */
  complete(): void {
    if (this.emitted === 0 && this.skipped > 0) return this.fail(new Error(`every element failed (${this.skipped} skipped), nothing was read`), {});
    this.meter.finish();
    this.subscriber.complete();
  }

  /** Counts a skipped element, by the items it lost (logged and counted in telemetry); the caller drops it. */
  skip(cause: unknown, element: ElementRef): void {
    this.skipped += 1;
    const lost = lostBy(cause);
    this.meter.skip(`${new StageError(this.stage, element, cause).message}${lost === 1 ? '' : ` (${lost} clips lost)`}`, lost);
  }

  /**
   * Feeds the stage from its input: `onItem` takes each item (queues it), `onEnd` notes that the
   * input completed, and the pump runs after either. An input error ends the stage unchanged,
   * after `onError` (the stage marks itself stopped).
   */
  subscribeInput<In>(upstream: Observable<Leased<In>>, onItem: (item: Leased<In>) => void, onEnd: () => void, onError: () => void): Subscription {
    return upstream.subscribe({
      next: (item) => {
        onItem(item);
        this.pump.run();
      },
      error: (err: unknown) => {
        onError();
        this.subscriber.error(err);
      },
      complete: () => {
        onEnd();
        this.pump.run();
      },
    });
  }

  /** Stops the run with a StageError (kept as is when the cause already is one). */
  fail(cause: unknown, element: ElementRef): void {
    this.meter.finish();
    this.subscriber.error(cause instanceof StageError ? cause : new StageError(this.stage, element, cause));
  }

  /**
   * Applies the error policy to a failed element: returns true when the element was skipped (the
   * caller drops it and goes on), false when the run was stopped.
   */
  failed(cause: unknown, element: ElementRef): boolean {
    if (this.policy === 'skip') {
      this.skip(cause, element);
      return true;
    }
    this.fail(cause, element);
    return false;
  }
}

/** An iterator over a sync or async iterable, remembering which kind it is. */
export interface AnyIterator<T> {
  readonly iterator: Iterator<T> | AsyncIterator<T>;
  readonly isAsync: boolean;
}

export function openIterator<T>(items: Iterable<T> | AsyncIterable<T>): AnyIterator<T> {
  return Symbol.asyncIterator in items
    ? { iterator: (items as AsyncIterable<T>)[Symbol.asyncIterator](), isAsync: true }
    : { iterator: (items as Iterable<T>)[Symbol.iterator](), isAsync: false };
}

/** Calls `return()` so that a generator's `finally` blocks run; synchronously for sync iterators. */
export function closeIterator<T>(it: AnyIterator<T> | undefined): void {
  if (!it) return;
  // Errors from cleanup after cancellation have no one left to report to.
  if (it.isAsync) {
    Promise.resolve((it.iterator as AsyncIterator<T>).return?.()).catch(() => {});
    return;
  }
  try {
    (it.iterator as Iterator<T>).return?.();
  } catch {
    /* see above */
  }
}

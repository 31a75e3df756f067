/**
 * Telemetry per stage: items and bytes (total and per second), the output edge's queue depth,
 * high-water mark and time blocked waiting for credit, and errors skipped.
 *
 * Stages create a {@link StageMeter} when they are subscribed. A run collects the meters of its
 * graph by subscribing inside {@link collectTelemetry}, whose context (an AsyncLocalStorage) also
 * follows the asynchronous continuations of that subscription, so a part of the graph subscribed
 * later (the second half of a `concat`) registers with the same run. Stages stay plain operators
 * that need no context argument; one subscribed outside any run meters itself and nobody reads it.
 *
 * Must not know about video, tensors or datasets.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Observable, Subject, interval, map, startWith } from 'rxjs';
import type { EdgeState } from './credit.ts';
import { subscribingNode } from './stage.ts';

export interface StageStats {
  readonly stage: string;
  readonly items: number;
  readonly bytes: number;
  readonly itemsPerSec: number;
  readonly bytesPerSec: number;
  /** Items on the stage's output edge right now (emitted, not yet released downstream). */
  readonly inFlight: number;
  readonly capacity: number;
  readonly highWater: number;
  readonly blockedMs: number;
  readonly skipped: number;
  readonly elapsedMs: number;
  readonly done: boolean;
  /** The stage's own measurements of its outputs (`StageOptions.measure`), by name. */
  readonly measures?: Readonly<Record<string, Summary>>;
}

/** Mean and (population) standard deviation of a quantity over `count` items. */
export interface Summary {
  readonly count: number;
  readonly mean: number;
  readonly std: number;
}

/** Welford's running mean and variance: one pass, constant memory, numerically stable. */
export class RunningSummary {
  private n = 0;
  private mu = 0;
  private m2 = 0;

  add(x: number): void {
    this.n += 1;
    const d = x - this.mu;
    this.mu += d / this.n;
    this.m2 += d * (x - this.mu);
  }

  get summary(): Summary {
    return { count: this.n, mean: this.mu, std: this.n > 0 ? Math.sqrt(this.m2 / this.n) : 0 };
  }
}

export interface TelemetryEvent {
  readonly stage: string;
  readonly kind: 'skipped' | 'info';
  readonly message: string;
  /** Items (clips) a skipped element lost. */
  readonly count?: number;
}

/**
 * Size in bytes of an item: a typed array or buffer, anything with a `byteLength` (Arrow batches
 * through their `data`), or a plain object holding typed arrays (a clip's frames and mask).
 */
export function byteSize(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value.byteLength;
  const v = value as { byteLength?: unknown; data?: { byteLength?: unknown } };
  if (typeof v.byteLength === 'number') return v.byteLength;
  if (typeof v.data?.byteLength === 'number') return v.data.byteLength;
  let sum = 0;
  // for-in rather than Object.values: this runs once per item per stage and must not allocate.
  for (const key in value) {
    const field = (value as Record<string, unknown>)[key];
    if (ArrayBuffer.isView(field)) sum += field.byteLength;
  }
  return sum;
}

export class StageMeter {
  items = 0;
  bytes = 0;
  skipped = 0;
  done = false;
  private readonly started = performance.now();
  private ended: number | undefined;
  /** The output edge of each subscription of the stage (an epoch re-reads a dataset's chain). */
  private readonly edges: EdgeState[];

  constructor(
    readonly stage: string,
    edge: EdgeState,
    private readonly events?: Subject<TelemetryEvent>,
  ) {
    this.edges = [edge];
  }

  /** The same stage subscribed again: its counts go on, with the new subscription's edge. */
  resume(edge: EdgeState): this {
    this.edges.push(edge);
    this.done = false;
    this.ended = undefined;
    return this;
  }

  private measured: Map<string, RunningSummary> | undefined;

  emitted(value: unknown, sizeOf: (v: unknown) => number = byteSize): void {
    this.items += 1;
    this.bytes += sizeOf(value);
  }

  /** Adds one item's measurements to the stage's running summaries. */
  measure(values: Readonly<Record<string, number>>): void {
    this.measured ??= new Map();
    for (const [key, x] of Object.entries(values)) {
      let summary = this.measured.get(key);
      if (!summary) this.measured.set(key, (summary = new RunningSummary()));
      summary.add(x);
    }
  }

  /** A skipped element, which lost `count` items (clips). */
  skip(message: string, count = 1): void {
    this.skipped += count;
    this.events?.next({ stage: this.stage, kind: 'skipped', message, count });
  }

  info(message: string): void {
    this.events?.next({ stage: this.stage, kind: 'info', message });
  }

  finish(): void {
    if (this.done) return;
    this.done = true;
    this.ended = performance.now();
  }

  stats(): StageStats {
    const elapsedMs = (this.ended ?? performance.now()) - this.started;
    const seconds = Math.max(elapsedMs / 1000, 1e-9);
    return {
      stage: this.stage,
      items: this.items,
      bytes: this.bytes,
      itemsPerSec: this.items / seconds,
      bytesPerSec: this.bytes / seconds,
      inFlight: this.edges.reduce((n, e) => n + e.inFlight, 0),
      capacity: this.edges.at(-1)!.capacity,
      highWater: Math.max(...this.edges.map((e) => e.highWater)),
      blockedMs: this.edges.reduce((n, e) => n + e.blockedMs, 0),
      skipped: this.skipped,
      elapsedMs,
      done: this.done,
      ...(this.measured && { measures: Object.fromEntries([...this.measured].map(([k, r]) => [k, r.summary])) }),
    };
  }
}

/** The meters of one run, in subscription order (sink first, source last), and its events. */
export class Telemetry {
  private readonly meters: StageMeter[] = [];
  private readonly eventSubject = new Subject<TelemetryEvent>();
  /** Skipped elements and stage notes, as they happen. */
  readonly events$: Observable<TelemetryEvent> = this.eventSubject.asObservable();

  /**
   * The meter of one subscription of a stage. A stage of a built graph comes with its node name
   * (`fit#2`, see collectStages), and each subscription of it meters into one row; a stage
   * subscribed outside a built graph is numbered by subscription.
   */
  meter(stage: string, edge: EdgeState, node?: string): StageMeter {
    if (node !== undefined) {
      const known = this.meters.find((m) => m.stage === node);
      if (known) return known.resume(edge);
      const meter = new StageMeter(node, edge, this.eventSubject);
      this.meters.push(meter);
      return meter;
    }
    const taken = this.meters.filter((m) => m.stage === stage || m.stage.startsWith(`${stage}#`)).length;
    const meter = new StageMeter(taken === 0 ? stage : `${stage}#${taken + 1}`, edge, this.eventSubject);
    this.meters.push(meter);
    return meter;
  }

  /** Stats of every stage, source first. */
  snapshot(): StageStats[] {
    return this.meters.map((m) => m.stats()).reverse();
  }

  /** A snapshot now and then every `periodMs`. */
  stats$(periodMs: number): Observable<StageStats[]> {
    return interval(periodMs).pipe(
      startWith(0),
      map(() => this.snapshot()),
    );
  }

  close(): void {
    this.eventSubject.complete();
  }
}

const active = new AsyncLocalStorage<Telemetry>();

/** Runs `subscribe` (the subscription of a graph) so that its stages meter into `telemetry`. */
export function collectTelemetry<T>(telemetry: Telemetry, subscribe: () => T): T {
  return active.run(telemetry, subscribe);
}

/** The meter a stage uses for the subscription being set up now. */
export function stageMeter(stage: string, edge: EdgeState): StageMeter {
  const node = subscribingNode(stage);
  return active.getStore()?.meter(stage, edge, node) ?? new StageMeter(node ?? stage, edge);
}

/** The graph, such that whoever subscribes to it collects its stages' meters into `telemetry`. */
export function metered<T>(telemetry: Telemetry, graph: Observable<T>): Observable<T> {
  return new Observable<T>((subscriber) => collectTelemetry(telemetry, () => graph.subscribe(subscriber)));
}

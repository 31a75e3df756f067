/**
 * The stage contract.
 *
 * A stage is made by a factory `(options) => Stage<In, Out>`; a `Stage` is an RxJS
 * `OperatorFunction` over {@link Leased} items with a `stageName`. Rules every stage keeps:
 * - it emits only against credit from its output edge's {@link CreditGate} and releases each input
 *   once it is done with it (see `credit.ts`), so memory stays bounded however large the data;
 * - all its state lives in the subscription: unsubscribing releases everything it holds (child
 *   processes, sockets, file handles, tensors, temporary files);
 * - a failure on one element becomes a {@link StageError} naming the stage and the element, and its
 *   `onError` policy says whether the run stops (`fail`, default) or the element is dropped, counted
 *   and logged (`skip`).
 *
 * Must not know about video, tensors or datasets.
 */
import type { Observable, OperatorFunction } from 'rxjs';
import type { Leased } from './credit.ts';
import type { ElementRef, ErrorPolicy } from './errors.ts';

export type { Leased } from './credit.ts';

/** An operator over leased items, with the name its telemetry and errors use. */
export type Stage<In, Out> = OperatorFunction<Leased<In>, Leased<Out>> & { readonly stageName: string };

/** A stream of leased items that starts a graph. */
export type Source<Out> = Observable<Leased<Out>> & { readonly stageName: string };

/** Default number of items in flight on an edge. */
export const DEFAULT_CAPACITY = 4;

/** Options shared by every stage made with the core operators. */
export interface StageOptions<In = unknown> {
  /** Most items in flight on the stage's output edge. Default {@link DEFAULT_CAPACITY}. */
  readonly capacity?: number;
  /** What to do when one element fails: stop the run (`fail`, default) or drop it (`skip`). */
  readonly onError?: ErrorPolicy;
  /** Names an input element in errors; default: its `id`, `clip` or `file` field, else its index. */
  readonly describe?: (value: In, index: number) => ElementRef;
  /** Bytes of an output item for telemetry; default: `byteLength` when it has one. */
  readonly sizeOf?: (value: unknown) => number;
  /**
   * Named quantities of each output item, summarised in telemetry as mean ± std over items (an
   * occlusion stage's occluded fraction). Default: none.
   */
  readonly measure?: (value: never) => Readonly<Record<string, number>>;
}

/** The stage lists of the builds in progress (innermost last). */
const collecting: string[][] = [];

function noteStage(name: string): void {
  collecting.at(-1)?.push(name);
}

/**
 * Runs `build` and lists the stages it composed: each source when it is made, each stage when a
 * `pipe` applies it to its upstream, so the list follows the chain. Names repeat as telemetry
 * numbers them (`fit`, `fit#2`). Stages composed later, while the graph runs, are not listed.
 */
export function collectStages<T>(build: () => T): { value: T; stages: string[] } {
  const stages: string[] = [];
  collecting.push(stages);
  try {
    const value = build();
    const seen = new Map<string, number>();
    return {
      value,
      stages: stages.map((name) => {
        const n = (seen.get(name) ?? 0) + 1;
        seen.set(name, n);
        return n === 1 ? name : `${name}#${n}`;
      }),
    };
  } finally {
    collecting.pop();
  }
}

export function named<In, Out>(name: string, op: OperatorFunction<Leased<In>, Leased<Out>>): Stage<In, Out> {
  // Noted when applied to its upstream (inside `pipe`), so the list follows the chain's order,
  // whatever order the stages were made in.
  const applied: OperatorFunction<Leased<In>, Leased<Out>> = (upstream) => {
    noteStage(name);
    return op(upstream);
  };
  return Object.assign(applied, { stageName: name });
}

export function namedSource<Out>(name: string, source: Observable<Leased<Out>>): Source<Out> {
  noteStage(name);
  return Object.assign(source, { stageName: name });
}

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
import { Observable, type OperatorFunction } from 'rxjs';
import type { Leased } from './credit.ts';
import type { ElementRef, ErrorPolicy } from './errors.ts';

export type { Leased } from './credit.ts';

/** An operator over leased items, with the name its telemetry and errors use. */
export type Stage<In, Out> = OperatorFunction<Leased<In>, Leased<Out>> & { readonly stageName: string };

/** Leased items flowing out of a chain of stages (a source and whatever was piped onto it). */
export type Stream<Out> = Observable<Leased<Out>>;

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

/**
 * One stage of a built graph, as {@link collectStages} finds it: its name (numbered as telemetry
 * numbers repeats: `fit`, `fit#2`), the capacity of its output edge, its parameters, and the
 * stages it reads from.
 */
export interface StageNode {
  readonly name: string;
  readonly capacity: number;
  readonly params: Readonly<Record<string, unknown>>;
  readonly inputs: readonly string[];
}

/** An edge of a built graph: `from`'s output read by `to`, at most `capacity` items in flight. */
export interface StageEdge {
  readonly from: string;
  readonly to: string;
  readonly capacity: number;
}

/** What a stage tells a graph's description about itself. */
export interface StageInfo {
  /** Its output edge's capacity. Default {@link DEFAULT_CAPACITY}. */
  readonly capacity?: number;
  /** Settings worth showing (sizes, concurrency, seeds); JSON-serialisable. */
  readonly params?: Readonly<Record<string, unknown>>;
  /** Chains the stage reads besides its upstream (a source that re-reads a dataset each epoch, held-out clips). */
  readonly reads?: readonly Observable<unknown>[];
}

interface Collection {
  readonly nodes: StageNode[];
  readonly seen: Map<string, number>;
}

/** The collections of the builds in progress (innermost last). */
const collecting: Collection[] = [];

/** The node name an observable was produced by, while a build is being collected. */
const NODE = Symbol('st-inpaint.stage-node');

type Tagged = { [NODE]?: string };

function noteStage(name: string, info: StageInfo, upstream: unknown): string | undefined {
  const collection = collecting.at(-1);
  if (!collection) return undefined;
  const n = (collection.seen.get(name) ?? 0) + 1;
  collection.seen.set(name, n);
  const node = n === 1 ? name : `${name}#${n}`;
  const inputs = [upstream, ...(info.reads ?? [])].map((o) => (o as Tagged | undefined)?.[NODE]).filter((n): n is string => n !== undefined);
  collection.nodes.push({ name: node, capacity: info.capacity ?? DEFAULT_CAPACITY, params: info.params ?? {}, inputs });
  return node;
}

/** The nodes whose subscription is being set up now (innermost last). */
const subscribing: string[] = [];

/**
 * The node of a built graph that a stage named `stage` belongs to, while that node is being
 * subscribed (its meter takes the node's name, so telemetry and `describe` agree).
 */
export function subscribingNode(stage: string): string | undefined {
  const node = subscribing.at(-1);
  return node !== undefined && (node === stage || node.startsWith(`${stage}#`)) ? node : undefined;
}

/** `observable`, marked as the output of `node`, and subscribing as that node. */
function asNode<T>(observable: Observable<T>, node: string | undefined): Observable<T> {
  if (node === undefined) return observable;
  const out = new Observable<T>((subscriber) => {
    subscribing.push(node);
    try {
      return observable.subscribe(subscriber);
    } finally {
      subscribing.pop();
    }
  });
  Object.defineProperty(out, NODE, { value: node });
  return out;
}

/** A built graph's stages and edges, before anything runs. */
export interface StageGraph {
  readonly nodes: readonly StageNode[];
  readonly edges: readonly StageEdge[];
}

/**
 * Runs `build` and collects the stages it composed: each source when it is made, each stage when a
 * `pipe` applies it to its upstream, so the list follows the chain and each stage knows what it
 * reads. Names repeat as telemetry numbers them (`fit`, `fit#2`). Stages composed later, while
 * the graph runs, are not collected.
 */
export function collectStages<T>(build: () => T): { value: T; stages: string[]; graph: StageGraph } {
  const collection: Collection = { nodes: [], seen: new Map() };
  collecting.push(collection);
  try {
    const value = build();
    const capacity = new Map(collection.nodes.map((n) => [n.name, n.capacity]));
    const edges = collection.nodes.flatMap((n) => n.inputs.map((from) => ({ from, to: n.name, capacity: capacity.get(from)! })));
    return { value, stages: collection.nodes.map((n) => n.name), graph: { nodes: collection.nodes, edges } };
  } finally {
    collecting.pop();
  }
}

/**
 * @param name the stage's name in telemetry, errors and `describe`.
 * @param op the operator itself.
 * @param info its output capacity and parameters, for the graph's description.
 */
export function named<In, Out>(name: string, op: OperatorFunction<Leased<In>, Leased<Out>>, info: StageInfo = {}): Stage<In, Out> {
  // Noted when applied to its upstream (inside `pipe`), so the list follows the chain's order,
  // whatever order the stages were made in.
  const applied: OperatorFunction<Leased<In>, Leased<Out>> = (upstream) => {
    const node = noteStage(name, info, upstream);
    return asNode(op(upstream), node);
  };
  return Object.assign(applied, { stageName: name });
}

export function namedSource<Out>(name: string, source: Observable<Leased<Out>>, info: StageInfo = {}): Source<Out> {
  return Object.assign(asNode(source, noteStage(name, info, undefined)), { stageName: name });
}

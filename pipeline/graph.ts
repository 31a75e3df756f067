/**
 * Graph definitions: a name, a one-line description, typed parameters with defaults (which become
 * command-line options) and the composition itself. A graph file under `graphs/` default-exports
 * one; the registry finds them there, or loads a user's graph file by path.
 *
 * Must not know about video, GANs or datasets.
 */
import type { NatsOptions } from './nats.ts';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readdir } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Observable } from 'rxjs';
import { UsageError } from './errors.ts';
import { collectStages, type StageEdge, type StageNode } from './stage.ts';

export type ParamSpec =
  | { readonly type: 'number'; readonly default: number; readonly describe: string; readonly min?: number; readonly max?: number; readonly integer?: boolean }
  | { readonly type: 'string'; readonly default: string; readonly describe: string; readonly choices?: readonly string[] }
  | { readonly type: 'boolean'; readonly default: boolean; readonly describe: string };

export type ParamSpecs = Readonly<Record<string, ParamSpec>>;

/** The value type of one parameter: number, boolean, or string (the union of its choices when it has them). */
export type ParamValue<S extends ParamSpec> = S extends { readonly type: 'number' }
  ? number
  : S extends { readonly type: 'boolean' }
    ? boolean
    : S extends { readonly choices: ReadonlyArray<infer C> }
      ? C
      : string;

export type ParamValues<P extends ParamSpecs> = { -readonly [K in keyof P]: ParamValue<P[K]> };

/** What a running graph may use besides its parameters. */
export interface RunContext {
  /** The run's own folder, `runs/<graph>/<run-id>/`; exists when `build` is called. */
  readonly runDir: string;
  readonly runId: string;
  /** The run continues an earlier one in the same folder (`--resume`): pick up its checkpoints. */
  readonly resume: boolean;
  /** A line for the user (shown above the progress display, kept in the metrics file). */
  log(message: string): void;
  /** The run's dataset chains read by workers over NATS (`run --nats URL --distribute STAGE`); absent: read here. */
  readonly distribute?: Distribution;
}

/** Where and how a graph's dataset chains run on workers (see graphs/lib/distribute.ts). */
export interface Distribution {
  readonly nats: NatsOptions;
  /** The last stage of the dataset's chain: everything up to it runs on the workers. */
  readonly stage: string;
  /** Clips per chunk a worker sends. */
  readonly chunk: number;
  /** Chunks of a part stored ahead of the training process at most: the edge's credit across the network. */
  readonly window: number;
}

export interface GraphDefinition<P extends ParamSpecs = ParamSpecs> {
  readonly name: string;
  readonly description: string;
  readonly params: P;
  /** Composes the graph; the run subscribes to the result and ends when it completes. */
  build(params: ParamValues<P>, context: RunContext): Observable<unknown>;
  /** For graphs that train models: the trainable parameters of each network at these settings. */
  parameters?(params: ParamValues<P>): Readonly<Record<string, number>>;
}

/** What `st-inpaint describe` prints, without running anything. */
export interface GraphDescription {
  /** The stages the graph's build makes, in order, as its telemetry names them (see {@link collectStages}). */
  readonly stages: readonly string[];
  /** Each stage with its output capacity, parameters and inputs. */
  readonly nodes: readonly StageNode[];
  /** Each edge, producer to consumer, with its capacity. */
  readonly edges: readonly StageEdge[];
  /** Why the stages could not be listed (a build that needs an option not given). */
  readonly unbuilt?: string;
  readonly parameters?: Readonly<Record<string, number>>;
}

/**
 * Builds `graph` at `params` without subscribing (nothing runs, nothing is read) and lists the
 * stages it composes. The run context points at a temporary folder, removed after.
 */
export function describeGraph<P extends ParamSpecs>(graph: GraphDefinition<P>, params: ParamValues<P>): GraphDescription {
  const runDir = mkdtempSync(join(tmpdir(), 'st-inpaint-describe-'));
  const parameters = graph.parameters?.(params);
  try {
    const { stages, graph: built } = collectStages(() => graph.build(params, { runDir, runId: 'describe', resume: false, log: () => {} }));
    return { stages, nodes: built.nodes, edges: built.edges, ...(parameters && { parameters }) };
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return { stages: [], nodes: [], edges: [], unbuilt: err.message, ...(parameters && { parameters }) };
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
}

const NAME = /^[a-z][a-z0-9-]*$/;

export function defineGraph<P extends ParamSpecs>(definition: GraphDefinition<P>): GraphDefinition<P> {
  if (!NAME.test(definition.name)) throw new Error(`graph name "${definition.name}" must be lower-case words joined by "-"`);
  if (definition.description.includes('\n')) throw new Error(`graph "${definition.name}": the description must be one line`);
  for (const [key, spec] of Object.entries(definition.params)) checkParam(`graph "${definition.name}"`, key, spec, spec.default);
  return definition;
}

function checkParam(owner: string, key: string, spec: ParamSpec, value: unknown): void {
  const bad = (why: string): never => {
    throw new UsageError(`${owner}: --${key} ${why}, got ${JSON.stringify(value)}`);
  };
  if (spec.type === 'number') {
    if (typeof value !== 'number' || !Number.isFinite(value)) bad('must be a number');
    const v = value as number;
    if (spec.integer && !Number.isInteger(v)) bad('must be an integer');
    if (spec.min !== undefined && v < spec.min) bad(`must be ≥ ${spec.min}`);
    if (spec.max !== undefined && v > spec.max) bad(`must be ≤ ${spec.max}`);
  } else if (spec.type === 'string') {
    if (typeof value !== 'string') bad('must be a string');
    if (spec.choices && !spec.choices.includes(value as string)) bad(`must be one of ${spec.choices.join(', ')}`);
  } else if (typeof value !== 'boolean') bad('must be true or false');
}

/**
 * Fills defaults and checks every value against its spec. `owner` starts each message, as in
 * `graph "kth-raindrops": --steps must be ≥ 1, got 0`.
 * @throws UsageError for an unknown key or a value out of range.
 */
export function resolveOptions<P extends ParamSpecs>(owner: string, specs: P, given: Readonly<Record<string, unknown>>): ParamValues<P> {
  const values: Record<string, unknown> = {};
  for (const key of Object.keys(given)) {
    if (!(key in specs)) throw new UsageError(`${owner} has no option --${key} (it has ${Object.keys(specs).map((k) => `--${k}`).join(', ') || 'none'})`);
  }
  for (const [key, spec] of Object.entries(specs)) {
    const value = given[key] ?? spec.default;
    checkParam(owner, key, spec, value);
    values[key] = value;
  }
  return values as ParamValues<P>;
}

/** Parses `key=value` strings (command-line lists such as `--occlusion-option drops=10`) by the specs' types. */
export function parseOptionPairs(owner: string, specs: ParamSpecs, pairs: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`${owner}: option "${pair}" must be written key=value`);
    const key = pair.slice(0, eq);
    const raw = pair.slice(eq + 1);
    const spec = specs[key];
    if (!spec) throw new UsageError(`${owner} has no option ${key} (it has ${Object.keys(specs).join(', ') || 'none'})`);
    out[key] = spec.type === 'number' ? (raw.trim() === '' ? NaN : Number(raw)) : spec.type === 'boolean' ? raw === 'true' ? true : raw === 'false' ? false : raw : raw;
  }
  return out;
}

/** Fills defaults and checks every value; an unknown key or a value out of range is a UsageError. */
export function resolveParams<P extends ParamSpecs>(graph: GraphDefinition<P>, given: Readonly<Record<string, unknown>>): ParamValues<P> {
  return resolveOptions(`graph "${graph.name}"`, graph.params, given);
}

function isGraph(value: unknown): value is GraphDefinition {
  const g = value as Partial<GraphDefinition> | undefined;
  return typeof g?.name === 'string' && typeof g.description === 'string' && typeof g.build === 'function' && typeof g.params === 'object';
}

/** Loads the graph default-exported by a file. */
export async function loadGraphFile(path: string): Promise<GraphDefinition> {
  if (!existsSync(path)) throw new UsageError(`no graph file "${path}"`);
  const module = (await import(pathToFileURL(resolve(path)).href)) as { default?: unknown };
  if (!isGraph(module.default)) throw new UsageError(`"${path}" does not default-export a graph (defineGraph({...}))`);
  return module.default;
}

/** Every graph under `dir` (files `*.ts` or `*.js` not starting with `_`), by name. */
export async function loadGraphs(dir: string): Promise<Map<string, GraphDefinition>> {
  const files = (await readdir(dir)).filter((f) => /\.(ts|js)$/.test(f) && !f.startsWith('_') && !f.endsWith('.d.ts')).sort();
  const graphs = new Map<string, GraphDefinition>();
  for (const file of files) {
    const graph = await loadGraphFile(join(dir, file));
    const stem = basename(file, extname(file));
    if (graph.name !== stem) throw new Error(`graphs/${file} defines graph "${graph.name}": the file must be named after its graph`);
    graphs.set(graph.name, graph);
  }
  return graphs;
}

/**
 * Running a graph: makes the run folder `runs/<graph>/<run-id>/`, subscribes with telemetry,
 * shows progress, records telemetry and the graph's records in `metrics.jsonl`, and tears the whole
 * graph down on SIGINT/SIGTERM or an abort signal (every stage releases what it holds: child
 * processes are killed, files closed, temporary files removed), rejecting with a CancelledError.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CancelledError, UsageError, oneLine } from './errors.ts';
import { resolveParams, type Distribution, type GraphDefinition, type RunContext } from './graph.ts';
import { formatStats, showProgress, type ProgressOptions } from './progress.ts';
import { Telemetry, metered, type StageStats } from './telemetry.ts';
import { settleTeardowns } from './teardown.ts';
import { collectStages } from './stage.ts';

export interface RunOptions {
  /** Root of the runs folder. Default `runs`. */
  readonly runsDir?: string;
  readonly runId?: string;
  /**
   * Continue the newest run of this graph under `runsDir` (same folder, same parameters except
   * those in `given`); the graph finds its checkpoints through `context.resume`.
   */
  readonly resume?: boolean;
  /** Stop the run when this signal aborts. */
  readonly signal?: AbortSignal;
  /** Tear down on SIGINT and SIGTERM of this process. Default true. */
  readonly handleSignals?: boolean;
  /** Progress display; `false` for none. */
  readonly progress?: ProgressOptions | false;
  /** Where the run's notes go. Default stderr. */
  readonly log?: (line: string) => void;
  /** The dataset chains on NATS workers (see RunContext.distribute). */
  readonly distribute?: Distribution;
}

export interface RunResult {
  readonly runDir: string;
  readonly records: number;
  readonly stats: StageStats[];
  readonly elapsedMs: number;
}

export function newRunId(date = new Date()): string {
  return date.toISOString().replace(/[:.]/g, '-').replace('Z', '');
}

/** The newest run of `graph` under `runsDir` and the parameters it was started with. */
export function latestRun(runsDir: string, graph: string): { runId: string; params: Record<string, unknown> } | undefined {
  const dir = join(runsDir, graph);
  if (!existsSync(dir)) return undefined;
  for (const runId of readdirSync(dir).sort().reverse()) {
    const metrics = join(dir, runId, 'metrics.jsonl');
    if (!existsSync(metrics)) continue;
    const first = readFileSync(metrics, 'utf8').split('\n', 1)[0] ?? '';
    try {
      const entry = JSON.parse(first) as { type?: string; params?: Record<string, unknown> };
      if (entry.type === 'run' && entry.params) return { runId, params: entry.params };
    } catch {
      // Not a run folder of ours; look further back.
    }
  }
  return undefined;
}

export async function runGraph(graph: GraphDefinition, given: Readonly<Record<string, unknown>>, options: RunOptions = {}): Promise<RunResult> {
  const runsDir = options.runsDir ?? 'runs';
  const previous = options.resume ? latestRun(runsDir, graph.name) : undefined;
  if (options.resume && !previous) throw new UsageError(`--resume: no earlier run of "${graph.name}" under ${join(runsDir, graph.name)}`);
  const params = resolveParams(graph, { ...previous?.params, ...given });
  const runId = previous?.runId ?? options.runId ?? newRunId();
  const runDir = join(runsDir, graph.name, runId);
  mkdirSync(runDir, { recursive: true });
  const metricsFile = join(runDir, 'metrics.jsonl');
  const record = (entry: object): void => appendFileSync(metricsFile, `${JSON.stringify(entry, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const context: RunContext = {
    runDir,
    runId,
    resume: previous !== undefined,
    ...(options.distribute && { distribute: options.distribute }),
    log: (message) => {
      record({ type: 'log', message });
      log(message);
    },
  };
  if (!previous) record({ type: 'run', graph: graph.name, runId, params });
  else record({ type: 'resume', params });

  const telemetry = new Telemetry();
  const started = performance.now();
  let records = 0;
  const progress = options.progress === false ? undefined : showProgress(telemetry, options.progress);
  const events = telemetry.events$.subscribe((e) => record({ type: 'event', ...e }));

  try {
    await new Promise<void>((resolve, reject) => {
      // Built as `describe` builds it, so that each stage meters under its node's name.
      const { value: built, stages } = collectStages(() => graph.build(params, context));
      if (options.distribute && !stages.some((s) => s.startsWith('workers:'))) throw new UsageError(`--distribute: graph "${graph.name}" reads no dataset whose chain the workers could run`);
      const subscription = metered(telemetry, built).subscribe({
        next: (value) => {
          records += 1;
          if (value !== null && typeof value === 'object' && !ArrayBuffer.isView(value)) record({ type: 'record', ...value });
        },
        error: reject,
        complete: resolve,
      });
      const cancel = (reason: string): void => {
        subscription.unsubscribe();
        reject(new CancelledError(reason));
      };
      const onSignal = (signal: NodeJS.Signals): void => cancel(`interrupted by ${signal}`);
      if (options.handleSignals !== false) {
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        subscription.add(() => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        });
      }
      if (options.signal) {
        if (options.signal.aborted) cancel(String(options.signal.reason ?? 'aborted'));
        const onAbort = (): void => cancel(String(options.signal?.reason ?? 'aborted'));
        options.signal.addEventListener('abort', onAbort, { once: true });
        subscription.add(() => options.signal?.removeEventListener('abort', onAbort));
      }
    });
  } finally {
    // What the stages' teardowns started (a last checkpoint) ends before the run does.
    for (const err of await settleTeardowns()) context.log(`while tearing down: ${oneLine(err)}`);
    progress?.unsubscribe();
    events.unsubscribe();
    telemetry.close();
    record({ type: 'telemetry', elapsedMs: performance.now() - started, stages: telemetry.snapshot() });
  }
  const stats = telemetry.snapshot();
  if (options.progress !== false) for (const row of formatStats(stats)) log(row);
  return { runDir, records, stats, elapsedMs: performance.now() - started };
}

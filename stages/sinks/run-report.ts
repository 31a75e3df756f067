/**
 * `runReport`: the last stage of a training graph. It turns each evaluated step into the records
 * the run's metrics file keeps (`step`, and `evaluation` when there was one) and, once the last
 * step has passed, writes `report.html` for the whole run: a resumed run's earlier sessions come
 * from its metrics file. Then it prints the final table and its reading.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { concat, defer, ignoreElements, type Observable } from 'rxjs';
import { expand } from '../../pipeline/operators/expand.ts';
import { named, type Leased, type Stage } from '../../pipeline/stage.ts';
import type { EvaluationPopulation, SetDistances } from '../eval/evaluate-model.ts';
import type { MetricRow } from '../eval/metrics.ts';
import type { PicturedStep } from './previews.ts';
import { metricsText, verdict, writeReport, type ReportInput } from './report.ts';

/** What the metrics file keeps of each training step. */
export type RunRecord =
  | ({ readonly type: 'step' } & PicturedStep['record'])
  | { readonly type: 'evaluation'; readonly step: number; readonly rows: MetricRow[]; readonly sets?: SetDistances; readonly population?: EvaluationPopulation };

export interface RunReportOptions {
  /** The run's folder: `report.html` goes there, and a resumed run's earlier records come from its `metrics.jsonl`. */
  readonly runDir: string;
  readonly title: string;
  /** The run's settings as the report lists them. */
  readonly settings: Readonly<Record<string, unknown>>;
  /** Sentences the reader must not miss (departures from the paper). */
  readonly notes?: readonly string[];
  /** Whether FID / FVD models were given. */
  readonly distances?: { readonly fid: boolean; readonly fvd: boolean };
  readonly log?: (line: string) => void;
}

type StepPoint = ReportInput['steps'][number];
type EvaluationPoint = ReportInput['evaluations'][number];

/**
 * @example
 * pictured.pipe(runReport({ runDir, title: 'st-inpaint demo', settings }), unwrap())
 */
export function runReport(o: RunReportOptions): Stage<PicturedStep, RunRecord> {
  const name = 'report';
  return named(name, (upstream: Observable<Leased<PicturedStep>>) =>
    defer(() => {
      const started = performance.now();
      const { steps, evaluations } = readRecords(join(o.runDir, 'metrics.jsonl'));
      let backend = '';
      let pictures: ReportInput['pictures'] = [];
      const records = upstream.pipe(
        expand(name, function* ({ record, backend: b, evaluation }: PicturedStep): Iterable<RunRecord> {
          if (b !== undefined) backend = b;
          steps.push({ step: record.step, lossG: record.lossG, lossD: record.lossD, lossSelf: record.lossSelf });
          yield { type: 'step', ...record };
          if (!evaluation) return;
          const e = { step: evaluation.step, rows: evaluation.rows, population: evaluation.population, ...(evaluation.sets && { sets: evaluation.sets }) };
          evaluations.push(e);
          pictures = evaluation.pictures;
          yield { type: 'evaluation', ...e };
        }, { describe: (s) => ({ index: s.record.step }) }),
      );
      const write = defer(async () => {
        const path = join(o.runDir, 'report.html');
        await writeReport(path, {
          title: o.title,
          runDir: o.runDir,
          backend: backend || 'backend not started',
          settings: o.settings,
          steps,
          evaluations,
          pictures,
          elapsedSeconds: (performance.now() - started) / 1000,
          ...(o.distances && { distances: o.distances }),
          notes: o.notes ?? [],
        });
        const last = evaluations.at(-1);
        if (last) o.log?.(`held-out metrics at step ${last.step}:\n${metricsText(last.rows)}\n${verdict(last.rows)}`);
        o.log?.(`report: ${path}`);
      }).pipe(ignoreElements());
      // The report is written once the last record has passed, before the run ends.
      return concat(records, write);
    }),
  );
}

/** Step and evaluation records already in a run's metrics file (an earlier session of a resumed run). */
function readRecords(path: string): { steps: StepPoint[]; evaluations: EvaluationPoint[] } {
  const steps: StepPoint[] = [];
  const evaluations: EvaluationPoint[] = [];
  if (!existsSync(path)) return { steps, evaluations };
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as { type?: string; step?: number; lossG?: number; lossD?: number; lossSelf?: number; rows?: MetricRow[]; sets?: SetDistances; population?: EvaluationPopulation };
      if (r.type === 'step' && typeof r.step === 'number') steps.push({ step: r.step, lossG: r.lossG ?? NaN, lossD: r.lossD ?? NaN, lossSelf: r.lossSelf ?? 0 });
      if (r.type === 'evaluation' && typeof r.step === 'number' && r.rows) evaluations.push({ step: r.step, rows: r.rows, ...(r.sets && { sets: r.sets }), ...(r.population && { population: r.population }) });
    } catch {
      // A torn last line of a crashed session: the records before it still count.
    }
  }
  return { steps, evaluations };
}

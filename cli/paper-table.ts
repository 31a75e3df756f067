/**
 * `paper-table RUNS…`: the final evaluations of finished runs set beside the paper's tables (FID,
 * FVD, masked MAE per experiment; the SST rows in °C; the supervised and ablation rows), with the
 * difference, as Markdown (printed) and HTML (written). Several finished runs of one graph (seeds)
 * are averaged, and the count is shown.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../pipeline/errors.ts';
import { writeFileAtomic } from '../pipeline/files.ts';
import type { MetricRow } from '../stages/eval/metrics.ts';
import { PAPER_RESULTS, SECTION_TITLES, type PaperRow } from '../graphs/lib/paper-results.ts';

/** What a finished run contributes: its graph and its final evaluation. */
export interface FinishedRun {
  readonly dir: string;
  readonly graph: string;
  readonly step: number;
  readonly rows: readonly MetricRow[];
  readonly sets?: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/** Run folders under `paths` (a run folder holds metrics.jsonl), two levels deep at most. */
function runFolders(paths: readonly string[]): string[] {
  const found: string[] = [];
  const visit = (dir: string, depth: number): void => {
    if (existsSync(join(dir, 'metrics.jsonl'))) return void found.push(dir);
    if (depth === 0) return;
    for (const entry of readdirSync(dir).sort()) {
      const child = join(dir, entry);
      if (statSync(child).isDirectory()) visit(child, depth - 1);
    }
  };
  for (const path of paths) {
    if (!existsSync(path) || !statSync(path).isDirectory()) throw new UsageError(`${path}: no such run folder`);
    visit(path, 2);
  }
  return found;
}

/**
 * A run's final evaluation, or why it has none: a run is finished when its last iteration's record
 * says so and was evaluated.
 */
export function readFinishedRun(dir: string): FinishedRun | string {
  let graph: string | undefined;
  let lastStep: { step: number; last?: boolean } | undefined;
  let evaluation: { step: number; rows: MetricRow[]; sets?: FinishedRun['sets'] } | undefined;
  for (const line of readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a torn last line of a crashed session
    }
    if (r['type'] === 'run') graph = String(r['graph']);
    if (r['type'] === 'step') lastStep = r as unknown as typeof lastStep;
    if (r['type'] === 'evaluation') evaluation = r as unknown as typeof evaluation;
  }
  if (!graph) return `${dir}: no run record in metrics.jsonl`;
  if (!lastStep?.last) return `${dir}: ${graph} has not finished (last step ${lastStep?.step ?? 0}); left out`;
  if (!evaluation || evaluation.step !== lastStep.step) return `${dir}: ${graph} has no evaluation of its last step; left out`;
  return { dir, graph, step: evaluation.step, rows: evaluation.rows, ...(evaluation.sets && { sets: evaluation.sets }) };
}

interface Cell {
  readonly ours?: number;
  readonly paper: number;
}

interface TableRow {
  readonly paper: PaperRow;
  readonly runs: number;
  readonly fid: Cell;
  readonly fvd: Cell;
  readonly mae: Cell;
}

const mean = (values: readonly number[]): number | undefined => (values.length ? values.reduce((a, v) => a + v, 0) / values.length : undefined);

/** The paper's rows with the runs' averages beside them (rows no run reproduces are kept, empty). */
export function paperTable(runs: readonly FinishedRun[]): TableRow[] {
  return PAPER_RESULTS.map((paper) => {
    const mine = runs.filter((r) => r.graph === paper.graph);
    const values = (pick: (r: FinishedRun) => number | undefined): number[] => mine.map(pick).filter((v): v is number => v !== undefined && Number.isFinite(v));
    const row = (r: FinishedRun) => r.rows.find((x) => x.method === paper.method);
    return {
      paper,
      runs: mine.length,
      fid: { paper: paper.fid, ours: mean(values((r) => r.sets?.[paper.method]?.['fid'])) },
      fvd: { paper: paper.fvd, ours: mean(values((r) => r.sets?.[paper.method]?.['fvd'])) },
      mae: { paper: paper.mae, ours: mean(values((r) => (paper.physical ? row(r)?.values['mae-physical']?.mean : row(r)?.values.mae.mean))) },
    };
  });
}

const number = (v: number | undefined, digits: number): string => (v === undefined ? '–' : v.toFixed(digits));
const delta = (c: Cell, digits: number): string => (c.ours === undefined ? '–' : `${c.ours >= c.paper ? '+' : ''}${(c.ours - c.paper).toFixed(digits)}`);
const HEAD = ['experiment', 'runs', 'FID', 'paper', 'Δ', 'FVD', 'paper', 'Δ', 'MAE', 'paper', 'Δ'];
const cells = (r: TableRow): string[] => [r.paper.label, String(r.runs), number(r.fid.ours, 2), number(r.fid.paper, 2), delta(r.fid, 2), number(r.fvd.ours, 2), number(r.fvd.paper, 2), delta(r.fvd, 2), number(r.mae.ours, 4), number(r.mae.paper, 4), delta(r.mae, 4)];

export function tableMarkdown(rows: readonly TableRow[]): string {
  const out: string[] = [];
  for (const [section, title] of Object.entries(SECTION_TITLES)) {
    out.push(`### ${title}`, '', `| ${HEAD.join(' | ')} |`, `|${HEAD.map((_, i) => (i < 2 ? '---' : '--:')).join('|')}|`);
    for (const r of rows.filter((x) => x.paper.section === section)) out.push(`| ${cells(r).join(' | ')} |`);
    out.push('');
  }
  out.push('FID on frames, FVD on clips, masked MAE on the occluded pixels ([0, 1] units; SST in °C); Δ = ours − paper; – : not measured (FID / FVD need --fid-model / --fvd-model) or no finished run.');
  return out.join('\n');
}

export function tableHtml(rows: readonly TableRow[], runs: readonly FinishedRun[]): string {
  const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  const sections = Object.entries(SECTION_TITLES).map(([section, title]) => {
    const body = rows.filter((x) => x.paper.section === section).map((r) => `<tr>${cells(r).map((c) => `<td>${escape(c)}</td>`).join('')}</tr>`).join('');
    return `<h2>${escape(title)}</h2><table><thead><tr>${HEAD.map((h) => `<th>${escape(h)}</th>`).join('')}</tr></thead><tbody>${body}</tbody></table>`;
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>st-inpaint against the paper</title>
<style>body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; } table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 3px 8px; } td:nth-child(n+2) { text-align: right; }</style></head>
<body><h1>st-inpaint against the paper's tables</h1>
${sections.join('\n')}
<p>FID on frames, FVD on clips, masked MAE on the occluded pixels ([0, 1] units; SST in °C); Δ = ours − paper; – : not measured (FID / FVD need --fid-model / --fvd-model) or no finished run.</p>
<p>Runs: ${runs.map((r) => `<code>${escape(r.dir)}</code> (${escape(r.graph)}, step ${r.step})`).join(', ') || 'none'}.</p>
</body></html>
`;
}

/** The command: reads the runs, prints Markdown, writes HTML to `html`; runs left out are named on `err`. */
export async function paperTableCommand(paths: readonly string[], html: string, io: { out: (l: string) => void; err: (l: string) => void }): Promise<void> {
  const runs: FinishedRun[] = [];
  for (const dir of runFolders(paths)) {
    const run = readFinishedRun(dir);
    if (typeof run === 'string') io.err(run);
    else if (!PAPER_RESULTS.some((p) => p.graph === run.graph)) io.err(`${dir}: ${run.graph} is not one of the paper's experiments; left out`);
    else runs.push(run);
  }
  if (runs.length === 0) throw new UsageError(`no finished run of the paper's experiments under ${paths.join(', ')}`);
  const rows = paperTable(runs);
  io.out(tableMarkdown(rows));
  await writeFileAtomic(html, tableHtml(rows, runs));
  io.err(`paper table: ${html}`);
}

/**
 * The run report: one self-contained HTML page (pictures inlined as data URIs, charts as inline
 * SVG) with the metrics table of the model against the baselines, an honest one-paragraph
 * reading of it, PNG strips of observed / filled / truth clips, loss and metric curves, and the
 * run's settings and backend. Also the plain-text table printed at the end of a run.
 */
import { writeFileAtomic } from '../../pipeline/files.ts';
import { describePopulation, type EvaluationPopulation } from '../eval/evaluate-model.ts';
import type { MetricRow } from '../eval/metrics.ts';

export interface ReportInput {
  readonly title: string;
  readonly runDir: string;
  readonly backend: string;
  readonly settings: Readonly<Record<string, unknown>>;
  /** Per iteration: the generator's total loss (adversarial, plus the weighted self-supervised term when on), the discriminators', and the self-supervised term alone. */
  readonly steps: ReadonlyArray<{ readonly step: number; readonly lossG: number; readonly lossD: number; readonly lossSelf?: number }>;
  /** Every evaluation of the run, the last one being the one the table shows. */
  readonly evaluations: ReadonlyArray<{ readonly step: number; readonly rows: readonly MetricRow[]; readonly sets?: Readonly<Record<string, Readonly<Record<string, number>>>>; readonly population?: EvaluationPopulation }>;
  /** Whether FID / FVD models were given (the report says so when they were not). */
  readonly distances?: { readonly fid: boolean; readonly fvd: boolean };
  /** PNG strips with a caption. */
  readonly pictures: ReadonlyArray<{ readonly caption: string; readonly png: Buffer }>;
  readonly elapsedSeconds: number;
  /** Sentences the reader must not miss (a departure from the paper's method), shown under the heading. */
  readonly notes?: readonly string[];
}

const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

const fmt = (m: { mean: number; std: number; count: number }, digits: number): string => (m.count === 0 ? '–' : `${m.mean.toFixed(digits)} ± ${m.std.toFixed(digits)}`);

/** The physical unit of a table's rows (°C for SST), when its data has one. */
const unitOf = (rows: readonly MetricRow[]): string | undefined => rows.find((r) => r.unit && r.values['mae-physical'])?.unit;
const none = { mean: NaN, std: NaN, count: 0 };

/** The table as aligned plain text (the end-of-run summary). */
export function metricsText(rows: readonly MetricRow[]): string {
  const unit = unitOf(rows);
  const head = ['method', 'masked MAE ↓', ...(unit ? [`MAE ${unit} ↓`, `RMSE ${unit} ↓`] : []), 'PSNR dB ↑', 'SSIM ↑'];
  const body = rows.map((r) => [r.method, fmt(r.values.mae, 4), ...(unit ? [fmt(r.values['mae-physical'] ?? none, 4), fmt(r.values['rmse-physical'] ?? none, 4)] : []), fmt(r.values.psnr, 2), fmt(r.values.ssim, 3)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  return [head, ...body].map((cells) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}

/** One honest paragraph: where the model stands against each baseline on masked MAE. */
export function verdict(rows: readonly MetricRow[], model = 'model'): string {
  const m = rows.find((r) => r.method === model);
  if (!m || m.values.mae.count === 0) return 'No masked MAE for the model: nothing was occluded in the held-out clips.';
  const parts = rows
    .filter((r) => r.method !== model && r.values.mae.count > 0)
    .map((r) => {
      const ratio = m.values.mae.mean / r.values.mae.mean;
      const word = ratio < 1 ? `${((1 - ratio) * 100).toFixed(0)} % lower than` : `${((ratio - 1) * 100).toFixed(0)} % higher than`;
      return `${word} ${r.method} (${r.values.mae.mean.toFixed(4)})`;
    });
  return `The model's masked MAE on ${m.clips} held-out clips is ${m.values.mae.mean.toFixed(4)}: ${parts.join('; ')}.`;
}

interface Series {
  readonly name: string;
  readonly colour: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
}

/** A small line chart as inline SVG. */
export function lineChart(title: string, xLabel: string, series: readonly Series[], width = 560, height = 240): string {
  const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (all.length === 0) return `<p>${escape(title)}: no data.</p>`;
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const pad = { l: 56, r: 12, t: 24, b: 36 };
  const sx = (x: number): number => pad.l + ((x - x0) / Math.max(x1 - x0, 1e-12)) * (width - pad.l - pad.r);
  const sy = (y: number): number => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  const lines = series
    .map((s) => {
      const pts = s.points.filter(([, y]) => Number.isFinite(y)).map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
      const marks = s.points.length <= 30 ? pts.map((p) => `<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="2.5" fill="${s.colour}"/>`).join('') : '';
      return `<polyline fill="none" stroke="${s.colour}" stroke-width="1.5" points="${pts.join(' ')}"/>${marks}`;
    })
    .join('');
  const ticks = [0, 0.5, 1].map((f) => y0 + f * (y1 - y0));
  const legend = series.map((s, i) => `<text x="${pad.l + 8 + i * 130}" y="16" fill="${s.colour}" font-size="12">■ ${escape(s.name)}</text>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="${escape(title)}">
<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>
<line x1="${pad.l}" y1="${height - pad.b}" x2="${width - pad.r}" y2="${height - pad.b}" stroke="#999"/>
<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${height - pad.b}" stroke="#999"/>
${ticks.map((v) => `<text x="${pad.l - 6}" y="${sy(v) + 4}" text-anchor="end" font-size="11" fill="#555">${v.toPrecision(3)}</text>`).join('')}
<text x="${pad.l}" y="${height - 8}" font-size="11" fill="#555">${x0}</text>
<text x="${width - pad.r}" y="${height - 8}" text-anchor="end" font-size="11" fill="#555">${x1}</text>
<text x="${(width + pad.l) / 2}" y="${height - 8}" text-anchor="middle" font-size="11" fill="#555">${escape(xLabel)}</text>
${legend}${lines}</svg>`;
}

const COLOURS = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd'];

export function reportHtml(r: ReportInput): string {
  const last = r.evaluations[r.evaluations.length - 1];
  const unit = last && unitOf(last.rows);
  const physical = (row: MetricRow): string => (unit ? `<td>${fmt(row.values['mae-physical'] ?? none, 4)}</td><td>${fmt(row.values['rmse-physical'] ?? none, 4)}</td>` : '');
  const table = last
    ? `<table><thead><tr><th>method</th><th>masked MAE ↓</th>${unit ? `<th>MAE (${escape(unit)}) ↓</th><th>RMSE (${escape(unit)}) ↓</th>` : ''}<th>PSNR (dB) ↑</th><th>SSIM ↑</th><th>clips</th></tr></thead><tbody>${last.rows
        .map((row) => `<tr><td>${escape(row.method)}</td><td>${fmt(row.values.mae, 4)}</td>${physical(row)}<td>${fmt(row.values.psnr, 2)}</td><td>${fmt(row.values.ssim, 3)}</td><td>${row.clips}</td></tr>`)
        .join('')}</tbody></table><p>${last.population ? `Scored on ${escape(describePopulation(last.population))}. ` : ''}${escape(verdict(last.rows))} Occluded share of the held-out pixels: ${fmt(last.rows[0]!.values.occluded, 3)}.</p>`
    : '<p>No evaluation was run.</p>';
  const sets = [...r.evaluations].reverse().find((e) => e.sets);
  const missing = [r.distances?.fid ? '' : 'FID (--fid-model: a converted Inception-v3)', r.distances?.fvd ? '' : 'FVD (--fvd-model: a converted I3D)'].filter(Boolean);
  const distances =
    (sets?.sets
      ? `<table id="distances"><thead><tr><th>method</th>${['fid', 'fvd'].filter((k) => Object.values(sets.sets!).some((v) => k in v)).map((k) => `<th>${k.toUpperCase()} ↓ (iteration ${sets.step})</th>`).join('')}</tr></thead><tbody>${Object.entries(sets.sets)
          .map(([method, v]) => `<tr><td>${escape(method)}</td>${['fid', 'fvd'].filter((k) => Object.values(sets.sets!).some((x) => k in x)).map((k) => `<td>${v[k] === undefined ? '–' : v[k]!.toFixed(2)}</td>`).join('')}</tr>`)
          .join('')}</tbody></table>`
      : '') + (missing.length ? `<p>Not computed: ${escape(missing.join('; '))}. See the README.</p>` : '');
  const methods = last ? last.rows.map((row) => row.method) : [];
  const maeCurve = lineChart(
    'masked MAE on held-out clips',
    'iteration',
    methods.map((method, i) => ({ name: method, colour: COLOURS[i % COLOURS.length]!, points: r.evaluations.map((e) => [e.step, e.rows.find((row) => row.method === method)?.values.mae.mean ?? NaN] as const) })),
  );
  const lossCurve = lineChart('training losses', 'iteration', [
    { name: 'generator', colour: COLOURS[0]!, points: r.steps.map((s) => [s.step, s.lossG] as const) },
    { name: 'discriminators (hinge)', colour: COLOURS[1]!, points: r.steps.map((s) => [s.step, s.lossD] as const) },
    ...(r.steps.some((s) => (s.lossSelf ?? 0) > 0) ? [{ name: 'self-supervised fill (L1)', colour: COLOURS[2]!, points: r.steps.map((s) => [s.step, s.lossSelf ?? 0] as const) }] : []),
  ]);
  const pictures = r.pictures.map((p) => `<figure><img alt="${escape(p.caption)}" src="data:image/png;base64,${p.png.toString('base64')}"/><figcaption>${escape(p.caption)}</figcaption></figure>`).join('\n');
  const settings = Object.entries(r.settings)
    .map(([k, v]) => `<tr><td>${escape(k)}</td><td>${escape(String(v))}</td></tr>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(r.title)}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
figure { margin: 1em 0; } img { image-rendering: pixelated; max-width: 100%; } figcaption { color: #555; }
</style></head>
<body>
<h1>${escape(r.title)}</h1>
<p>Run folder <code>${escape(r.runDir)}</code>, ${escape(r.backend)}, ${r.steps.length} iterations in ${r.elapsedSeconds.toFixed(0)} s.</p>
${(r.notes ?? []).map((n) => `<p class="note"><strong>Note:</strong> ${escape(n)}</p>`).join('\n')}
<h2>Held-out metrics${last ? ` (iteration ${last.step})` : ''}</h2>
<div id="metrics">${table}</div>
${distances}
<h2>Clips</h2>
${pictures || '<p>No pictures.</p>'}
<h2>Curves</h2>
${lossCurve}
${maeCurve}
<h2>Settings</h2>
<table id="settings">${settings}</table>
<script>
// Lets a headless browser (and a curious reader) check that every picture decoded.
addEventListener('load', () => {
  const images = [...document.images];
  document.body.dataset.images = String(images.length);
  document.body.dataset.loaded = String(images.filter((i) => i.complete && i.naturalWidth > 0).length);
});
</script>
</body></html>
`;
}

export async function writeReport(path: string, r: ReportInput): Promise<void> {
  await writeFileAtomic(path, reportHtml(r));
}

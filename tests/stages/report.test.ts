/**
 * The HTML report opened in a real headless Chromium (Debian's `chromium`, installed by .ci/run):
 * every picture decodes, the metrics table and both charts are there. Plus the plain-text summary
 * and the verdict's arithmetic.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { MetricTable, clipMetrics } from '../../stages/eval/metrics.ts';
import { maskRow, stripPng } from '../../stages/sinks/png-strip.ts';
import { metricsText, verdict, writeReport } from '../../stages/sinks/report.ts';
import { Random } from '../../stages/random.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-report-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function chromium(): string {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      execFileSync('which', [name], { stdio: 'ignore' });
      return name;
    } catch {
      /* next */
    }
  }
  throw new Error('no Chromium on PATH: install Debian\'s "chromium" package (.ci/run does)');
}

test('the report renders in headless Chromium with every picture decoded, the table and the charts', async () => {
  const random = Random.fromKey('report');
  const shape = { frames: 4, height: 12, width: 12, channels: 1 };
  const n = 4 * 144;
  const table = new MetricTable();
  const pictures: Array<{ caption: string; png: Buffer }> = [];
  for (let c = 0; c < 3; c++) {
    const truth = Float32Array.from({ length: n }, () => random.uniform(0, 1));
    const mask = Uint8Array.from({ length: n }, () => (random.uniform(0, 1) < 0.3 ? 0 : 1));
    const model = Float32Array.from(truth, (v, i) => (mask[i] ? v : v * 0.8));
    const floor = Float32Array.from(truth, (v, i) => (mask[i] ? v : 0.5));
    table.add('model', clipMetrics(truth, model, mask, shape));
    table.add('mean-fill', clipMetrics(truth, floor, mask, shape));
    const unit = [0, 1] as const;
    pictures.push({ caption: `clip ${c}`, png: await stripPng([{ pixels: truth, range: unit }, maskRow(mask), { pixels: model, range: unit }], shape) });
  }
  const rows = table.table();
  const path = join(scratch, 'report.html');
  await writeReport(path, {
    title: 'test report',
    runDir: scratch,
    backend: 'backend wasm',
    settings: { steps: 3, seed: 1 },
    steps: [1, 2, 3].map((step) => ({ step, lossG: 2 / step, lossD: 4 - step })),
    evaluations: [2, 3].map((step) => ({ step, rows })),
    pictures,
    elapsedSeconds: 1,
  });
  const dom = execFileSync(chromium(), ['--headless', '--no-sandbox', '--disable-gpu', '--virtual-time-budget=5000', '--dump-dom', pathToFileURL(path).href], {
    encoding: 'utf8',
    timeout: 60_000,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const images = /data-images="(\d+)"/.exec(dom)?.[1];
  const loaded = /data-loaded="(\d+)"/.exec(dom)?.[1];
  assert.equal(images, '3', 'the page counted its images');
  assert.equal(loaded, '3', 'every image decoded');
  assert.match(dom, /<div id="metrics"><table>.*<td>model<\/td>.*<td>mean-fill<\/td>/s);
  assert.equal(dom.match(/<svg /g)?.length, 2);
});

test('the summary table and verdict state the numbers as they are', () => {
  const rows = [
    { method: 'model', clips: 2, values: { mae: { mean: 0.05, std: 0.01, count: 2 }, psnr: { mean: 25, std: 1, count: 2 }, ssim: { mean: 0.8, std: 0.1, count: 2 }, mse: { mean: 0.01, std: 0, count: 2 }, occluded: { mean: 0.3, std: 0, count: 2 } } },
    { method: 'dineof', clips: 2, values: { mae: { mean: 0.04, std: 0.01, count: 2 }, psnr: { mean: 26, std: 1, count: 2 }, ssim: { mean: 0.85, std: 0.1, count: 2 }, mse: { mean: 0.01, std: 0, count: 2 }, occluded: { mean: 0.3, std: 0, count: 2 } } },
    { method: 'mean-fill', clips: 2, values: { mae: { mean: 0.1, std: 0.02, count: 2 }, psnr: { mean: 20, std: 1, count: 2 }, ssim: { mean: 0.7, std: 0.1, count: 2 }, mse: { mean: 0.02, std: 0, count: 2 }, occluded: { mean: 0.3, std: 0, count: 2 } } },
  ];
  assert.equal(verdict(rows), "The model's masked MAE on 2 held-out clips is 0.0500: 25 % higher than dineof (0.0400); 50 % lower than mean-fill (0.1000).");
  const text = metricsText(rows).split('\n');
  assert.equal(text.length, 4);
  assert.match(text[1]!, /^model\s+0\.0500 ± 0\.0100\s+25\.00 ± 1\.00\s+0\.800 ± 0\.100$/);
});

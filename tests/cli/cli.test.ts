/** The command line as users call it: a real process, exit codes, one-line reasons, run folders. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';

const root = resolve(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'st-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin/st-inpaint.js'), ...args], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('st-inpaint', () => {
  it('graphs: lists every graph file with its one-line description', () => {
    const r = cli('graphs');
    assert.equal(r.code, 0, r.stderr);
    const names = readdirSync(join(root, 'graphs')).filter((f) => f.endsWith('.ts') && !f.startsWith('_')).map((f) => f.replace(/\.ts$/, ''));
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, names.length);
    for (const name of names) assert.ok(lines.some((l) => l.startsWith(`${name} `)), `${name} listed`);
    assert.match(r.stdout, /stream-check\s+Stream generated clips/);
  });

  it('run with an unknown graph exits 2 with one line naming it', () => {
    const r = cli('run', 'no-such-graph');
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /^st-inpaint: unknown graph "no-such-graph"/);
  });

  it('an unknown option or a value out of range exits 2 with one line naming it', () => {
    const unknown = cli('run', 'stream-check', '--frobnicate', '3');
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr.trim(), 'st-inpaint: Unknown argument: frobnicate');
    const range = cli('run', 'stream-check', '--batch', '0');
    assert.equal(range.code, 2);
    assert.equal(range.stderr.trim(), 'st-inpaint: graph "stream-check": --batch must be ≥ 1, got 0');
    const noCommand = cli();
    assert.equal(noCommand.code, 2);
    assert.match(noCommand.stderr, /^st-inpaint: name a command/);
  });

  it('--help shows a graph\'s own options with their defaults', () => {
    const r = cli('run', 'stream-check', '--help');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Graph options:/);
    assert.match(r.stdout, /--clips\s+number of clips\s+\[number\] \[default: 512\]/);
  });

  it('run writes the run folder: the data, and metrics with telemetry of every stage', () => {
    const r = cli('run', 'stream-check', '--clips', '40', '--frames', '3', '--size', '16', '--batch', '8', '--out', 'my-runs');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /stream-check: 2 records in [\d.]+ s; run folder my-runs\/stream-check\//);
    assert.match(r.stderr, /verified 40 clips \(5 batches\)/);
    const runs = join(dir, 'my-runs', 'stream-check');
    const runDir = join(runs, readdirSync(runs)[0]!);
    assert.deepEqual(readdirSync(runDir).sort(), ['clips.arrow', 'metrics.jsonl']);
    const lines = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines[0], { type: 'run', graph: 'stream-check', runId: readdirSync(runs)[0], params: { clips: 40, frames: 3, size: 16, channels: 3, batch: 8 } });
    const telemetry = lines.find((l) => l.type === 'telemetry') as { stages: Array<{ stage: string; items: number; highWater: number; capacity: number }> };
    const byStage = Object.fromEntries(telemetry.stages.map((s) => [s.stage, s]));
    assert.equal(byStage.generate?.items, 40);
    assert.equal(byStage['batch-clips']?.items, 5);
    assert.equal(byStage.verify?.items, 5);
    for (const s of telemetry.stages) assert.ok(s.highWater <= s.capacity, s.stage);
  });
});

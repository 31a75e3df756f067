/** The command line as users call it: a real process, exit codes, one-line reasons, run folders. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import sharp from 'sharp';
import { checkSyntheticOptions, syntheticClip } from '../../datasets/synthetic.ts';
import { chooseOcclusion, clipRandom } from '../../stages/occlusion/index.ts';

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

  it('describe: the stage chain and parameter counts at the graph\'s settings, as text and JSON', () => {
    const r = cli('describe', 'demo', '--json', '--base', '32', '--size', '64', '--frames', '35');
    assert.equal(r.code, 0, r.stderr);
    const d = JSON.parse(r.stdout) as { stages: string[]; edges: Array<{ from: string; to: string; capacity: number }>; nodes: Array<{ name: string; params: Record<string, unknown> }>; parameters: Record<string, number> };
    // The chain as the graph composes it (that it is exactly what a run meters: tests/graphs/describe.test.ts):
    // training reads the observed train clips, the evaluation reads the training records and the observed test clips.
    const edges = d.edges.map((e) => `${e.from} → ${e.to} (${e.capacity})`);
    for (const edge of ['synthetic-train → occlude-raindrops (4)', 'occlude-raindrops → batch-clips (4)', 'batch-clips → train-gan (4)', 'train-gan → evaluate (2)', 'occlude-test → evaluate (4)', 'evaluate → previews (1)', 'previews → report (1)']) {
      assert.ok(edges.includes(edge), `${edge} in ${edges.join(', ')}`);
    }
    // Two sources; every other stage reads one stage, but the evaluation, which reads two.
    assert.equal(d.edges.length, d.stages.length - 2 + 1);
    assert.equal(d.nodes.find((n) => n.name === 'batch-clips')?.params['size'], 4);
    // The demo is grey (C_img = 1) without the extra block; the paper-size counts (3 channels) are in
    // tests/stages/gan.test.ts. Differences from those, by the first and last layers only:
    // G: 14 803 114 − (conv 27·2·32 + shortcut 2·32 + BN 2·2 on the input, 27·32·2 + 2 at the output) = 14 799 588;
    // D_f: 2 160 961 − 9·2·32 = 2 160 385; D_s: 6 480 385 − 27·2·32 = 6 478 657.
    assert.deepEqual(d.parameters, { generator: 14_799_588, frameDiscriminator: 2_160_385, sequenceDiscriminator: 6_478_657 });
    // The paper's table's extra 16C → 16C block adds 2·(27·512² + 2·512) = 14 157 824 to G
    // (28 957 412 for one channel: method.md §3 gives ≈ 29 M); the authors' code has none.
    const extra = cli('describe', 'kth-raindrops', '--json', '--extra-block', '--base', '32', '--size', '64', '--frames', '35');
    assert.equal(extra.code, 0, extra.stderr);
    assert.equal((JSON.parse(extra.stdout) as { parameters: Record<string, number> }).parameters['generator'], 14_799_588 + 14_157_824);
    const text = cli('describe', 'demo');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^ {2}batch-clips → train-gan \(capacity 2; checkpointEvery=25, keep=3\)$/m);
    assert.match(text.stdout, /generator: [\d,]+ parameters/);
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
    // A value outside an option's choices: the option, the value and the choices, on one line.
    const choice = cli('run', 'demo', '--backend', 'foo');
    assert.equal(choice.code, 2);
    assert.equal(choice.stderr.trim(), 'st-inpaint: Invalid values: Argument: backend, Given: "foo", Choices: "auto", "tensorflow-gpu", "webgpu", "tensorflow", "wasm", "cpu"');
    const noCommand = cli();
    assert.equal(noCommand.code, 2);
    assert.match(noCommand.stderr, /^st-inpaint: name a command/);
  });

  it('combinations that cannot train are refused when the graph is built, exit 2, before the backend or any data', () => {
    const cases: Array<[string[], RegExp]> = [
      [['run', 'demo', '--size', '33', '--steps', '1'], /^st-inpaint: --size: frames of 33×33; the generator's self-attention pools 2×2, so height and width must be even$/],
      [['run', 'demo', '--threads', '2', '--batch', '1', '--steps', '1'], /^st-inpaint: --threads 2 needs --batch of at least 2, got 1$/],
      [['peek', 'synthetic', '--occlusion', 'moving-vertical-bar', '--occlusion-option', 'min-width=0.5', '--occlusion-option', 'max-width=0.2'], /^st-inpaint: occlusion "moving-vertical-bar": --min-width \(0\.5\) must not exceed --max-width \(0\.2\)$/],
      [['peek', 'synthetic', '--occlusion', 'clouds', '--occlusion-option', 'lwp=/no/such/lwp.npy'], /^st-inpaint: occlusion "clouds": --lwp \/no\/such\/lwp\.npy: no such file$/],
    ];
    for (const [args, message] of cases) {
      const r = cli(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      // One line, and nothing started: no backend chosen, no clip read.
      assert.match(r.stderr.trim(), message);
      assert.equal(r.stdout, '');
    }
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

  it('peek: one JSON object per clip whose statistics match the clips, with the occluded fraction', async () => {
    const r = cli('peek', 'synthetic', '--clips', '4', '--json', '--occlusion', 'remove-pixel', '--occlusion-option', 'p=0.3', '--seed', '9', '--dataset-option', 'size=16', '--dataset-option', 'frames=5');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 4);
    const o = checkSyntheticOptions({ size: 16, frames: 5 });
    const choice = chooseOcclusion('remove-pixel', { p: 0.3 });
    const drawer = await choice.process.prepare(choice.options, { frames: 5, height: 16, width: 16 });
    lines.forEach((line, i) => {
      const clip = syntheticClip(o, i);
      const mask = drawer.draw(clipRandom(9, clip.id, 'remove-pixel', choice.options));
      const y = Array.from(clip.frames, (v, p) => (mask[p] ? v : 0) / 255);
      const mean = y.reduce((a, b) => a + b) / y.length;
      const std = Math.sqrt(y.reduce((a, b) => a + (b - mean) ** 2, 0) / y.length);
      assert.deepEqual(Object.keys(line), ['id', 'split', 'frames', 'height', 'width', 'channels', 'mean', 'std', 'occluded']);
      assert.equal(line.id, clip.id);
      assert.equal(line.split, clip.split);
      assert.deepEqual([line.frames, line.height, line.width, line.channels], [5, 16, 16, 1]);
      assert.ok(Math.abs((line.mean as number) - mean) < 1e-9 && Math.abs((line.std as number) - std) < 1e-9);
      assert.equal(line.occluded, mask.filter((v) => v === 0).length / mask.length);
    });
  });

  it('peek and preview-occlusion: bad names and options exit 2 with one line naming them', () => {
    for (const [args, message] of [
      [['peek', 'synthetic', '--occlusion', 'raindrops', '--occlusion-option', 'width=0'], /^st-inpaint: occlusion "raindrops": --width must be ≥ 1, got 0$/],
      [['peek', 'synthetic', '--occlusion', 'remove-pixel', '--occlusion-option', 'p=1.5'], /^st-inpaint: occlusion "remove-pixel": --p must be ≤ 1, got 1.5$/],
      [['peek', 'mnist'], /^st-inpaint: unknown dataset "mnist" \(known: synthetic, shards, bair, kth, sst, faceforensics\)$/],
      [['peek', 'synthetic', '--occlusion', 'fog'], /^st-inpaint: unknown occlusion "fog"/],
      [['preview-occlusion', 'raindrops', '--out', 'x.jpg'], /^st-inpaint: --out must name a \.png file, got x\.jpg$/],
    ] as const) {
      const r = cli(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr.trim(), message);
    }
  });

  it('preview-occlusion: a PNG of clean, mask and observed rows, hidden pixels white', async () => {
    const out = join(dir, 'preview.png');
    const r = cli('preview-occlusion', 'moving-vertical-bar', '--out', out, '--dataset-option', 'size=16', '--dataset-option', 'frames=4');
    assert.equal(r.code, 0, r.stderr);
    const { data, info } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
    // 4 frames of 16 px with 1 px gaps, 3 rows, enlarged 6× (96 px / 16 px).
    assert.deepEqual([info.width, info.height], [6 * (4 * 17 - 1), 6 * (3 * 17 - 1)]);
    const pixel = (row: number, t: number, y: number, x: number): number[] => {
      const at = ((6 * (row * 17 + y)) * info.width + 6 * (t * 17 + x)) * info.channels;
      return [data[at]!, data[at + 1]!, data[at + 2]!];
    };
    let hidden = 0;
    for (let t = 0; t < 4; t++) {
      for (let y = 0; y < 16; y++) {
        for (let x = 0; x < 16; x++) {
          if (pixel(1, t, y, x)[0] === 255) {
            hidden += 1;
            assert.deepEqual(pixel(2, t, y, x), [255, 255, 255], 'a hidden pixel is white in the observed row');
          } else assert.deepEqual(pixel(2, t, y, x), pixel(0, t, y, x), 'a visible pixel is the clean one');
        }
      }
    }
    assert.ok(hidden > 0);
  });
});


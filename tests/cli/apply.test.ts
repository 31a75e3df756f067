/**
 * `st-inpaint apply` end to end with a real ffmpeg: a small checkpoint (a real training run of the
 * demo at a tiny size) applied to generated videos. Frame count, size and frame rate are kept,
 * visible pixels come back bit for bit, holes change, the metrics against the clean input are
 * printed, and peak memory does not grow with the video's length (400 against 1200 frames).
 * Wrong inputs get one line naming them.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import demo from '../../graphs/demo.ts';
import { runGraph } from '../../pipeline/runner.ts';
import { chooseOcclusion } from '../../stages/occlusion/index.ts';
import { clipRandom } from '../../stages/occlusion/process.ts';
import { FrameReader, ffmpegPath, probeVideo } from '../../stages/io/video.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-apply-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'st-inpaint.js');
let runDir = '';

function video(path: string, frames: number, size = '40x32'): void {
  execFileSync(ffmpegPath(), ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=size=${size}:rate=24`, '-frames:v', String(frames), '-pix_fmt', 'gray', '-c:v', 'ffv1', path]);
}

async function allFrames(path: string, bytes: number): Promise<Uint8Array[]> {
  const reader = new FrameReader(path, bytes, 'gray');
  const out: Uint8Array[] = [];
  for (let f = await reader.next(); f; f = await reader.next()) out.push(f);
  return out;
}

function apply(args: string[], env: NodeJS.ProcessEnv = process.env): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync('node', [BIN, 'apply', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000, env });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { code: e.status, stdout: e.stdout, stderr: e.stderr };
  }
}

before(async () => {
  const run = await runGraph(demo, { steps: 2, batch: 2, clips: 40, frames: 4, size: 16, base: 2, backend: 'wasm', 'eval-every': 0, 'eval-clips': 1 }, { progress: false, handleSignals: false, log: () => {}, runsDir: join(scratch, 'runs') });
  runDir = run.runDir;
});

test('apply fills a 400-frame video: same frames, size and rate, visible pixels exact, holes filled, metrics printed', async () => {
  const input = join(scratch, 'in-400.mkv');
  const output = join(scratch, 'out-400.mkv');
  video(input, 400);
  const r = apply(['--checkpoint', runDir, '--input', input, '--occlusion', 'raindrops', '--seed', '3', '--output', output, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { frames: number; maskedMae: number; psnr: number };
  assert.equal(summary.frames, 400);
  assert.ok(summary.maskedMae > 0 && summary.maskedMae < 1 && Number.isFinite(summary.psnr));
  const [a, b] = [probeVideo(input), probeVideo(output)];
  assert.deepEqual([b.width, b.height, b.fps], [a.width, a.height, a.fps]);
  const [inFrames, outFrames] = [await allFrames(input, 40 * 32), await allFrames(output, 40 * 32)];
  assert.equal(outFrames.length, 400);
  // The masks apply drew: the raindrops process over chunks of the model's T = 4 frames.
  const { process, options } = chooseOcclusion('raindrops', {});
  const drawer = await process.prepare(options as never, { frames: 4, height: 32, width: 40 });
  let hidden = 0;
  let changed = 0;
  for (let chunk = 0; chunk < 100; chunk++) {
    const mask = drawer.draw(clipRandom(3, `${basename(input)}#${chunk}`, 'raindrops', options));
    for (let k = 0; k < 4; k++) {
      const [i, o] = [inFrames[chunk * 4 + k]!, outFrames[chunk * 4 + k]!];
      for (let p = 0; p < 40 * 32; p++) {
        if (mask[k * 40 * 32 + p]) assert.equal(o[p], i[p], `frame ${chunk * 4 + k} pixel ${p} is visible and must be kept`);
        else (hidden++, (changed += o[p] !== 255 ? 1 : 0));
      }
    }
  }
  assert.ok(hidden > 0 && changed > hidden / 2, `${changed} of ${hidden} hidden pixels filled`);
  assert.ok(!readdirSync(scratch).some((f) => f.includes('.partial')), 'no partial file left');
});

test('peak memory does not grow with the length of the video (400 against 1200 frames)', () => {
  const peak = (frames: number): number => {
    const input = join(scratch, `len-${frames}.mkv`);
    video(input, frames);
    // A JS heap capped well above what apply needs: V8 otherwise lets garbage pile up for as long
    // as it likes (more so when the machine is busy), which would read as growth. A real leak, in
    // the JS heap or in the wasm heap (not capped), still shows, or fails the run.
    const env = { ...process.env, NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --max-old-space-size=128`.trim() };
    const r = apply(['--checkpoint', runDir, '--input', input, '--occlusion', 'remove-pixel', '--output', join(scratch, `len-out-${frames}.mkv`), '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { peakRss: number; frames: number }).peakRss;
  };
  // Peak RSS comes in steps (the wasm heap and V8's grow in steps whose timing varies from run to
  // run): on 2026-12-02 eight runs peaked at 209 – 241 MiB for 400 frames and 225 – 250 MiB for
  // 1200, whatever the order. A leak shows in every run and grows with the length; a late step
  // does not. So when the long run is over the bound, both are measured once more, and the bound
  // is set by the higher of the short runs and compared with the lower of the long ones.
  const boundFor = (shortPeak: number): number => shortPeak * 1.1 + 16 * 2 ** 20;
  let short = peak(400);
  let long = peak(1200);
  if (long >= boundFor(short)) {
    short = Math.max(short, peak(400));
    long = Math.min(long, peak(1200));
  }
  assert.ok(long < boundFor(short), `peak RSS ${(short / 2 ** 20).toFixed(0)} MiB for 400 frames, ${(long / 2 ** 20).toFixed(0)} MiB for 1200`);
});

test('a missing checkpoint, an unreadable video and a mask of another size each get one line naming them', () => {
  const input = join(scratch, 'in-small.mkv');
  video(input, 10);
  const mask = join(scratch, 'mask-other.mkv');
  video(mask, 10, '32x32');
  const junk = join(scratch, 'junk.mkv');
  execFileSync('sh', ['-c', `echo not a video > ${junk}`]);
  const cases: Array<[string[], RegExp]> = [
    [['--checkpoint', join(scratch, 'nope'), '--input', input, '--occlusion', 'raindrops', '--output', join(scratch, 'x.mkv')], /--checkpoint: no folder ".*nope"/],
    [['--checkpoint', runDir, '--input', junk, '--occlusion', 'raindrops', '--output', join(scratch, 'x.mkv')], /--input .*junk\.mkv: not a video ffmpeg can read/],
    [['--checkpoint', runDir, '--input', input, '--mask', mask, '--output', join(scratch, 'x.mkv')], /--mask .*mask-other\.mkv is 32×32, the input .* is 40×32/],
  ];
  for (const [args, message] of cases) {
    const r = apply(args);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, message);
  }
  assert.ok(!existsSync(join(scratch, 'x.mkv')));
});

test('Ctrl-C during apply exits 130 and leaves no output, partial or whole', async () => {
  const folder = mkdtempSync(join(scratch, 'interrupt-'));
  const input = join(folder, 'long.mkv');
  video(input, 2000);
  const child = spawn('node', [BIN, 'apply', '--checkpoint', runDir, '--input', input, '--occlusion', 'raindrops', '--output', join(folder, 'out.mkv')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  // Interrupted once the model is loaded and the frames begin to stream.
  let sent = false;
  child.stderr.on('data', (s: string) => {
    stderr += s;
    if (!sent && /^model /m.test(stderr)) sent = child.kill('SIGINT');
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(code, 130, `exit ${code}: ${stderr.split("\n").slice(-3).join(" | ")}`);
  assert.match(stderr, /st-inpaint: interrupted by SIGINT/);
  assert.deepEqual(readdirSync(folder), ['long.mkv']);
});

test('a video with a display rotation (a phone held upright) is filled in its displayed orientation, visible pixels unchanged', async () => {
  const folder = mkdtempSync(join(scratch, 'rotated-'));
  const plain = join(folder, 'plain.mp4');
  const rotated = join(folder, 'rotated.mp4');
  execFileSync(ffmpegPath(), ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=48x32:rate=24', '-frames:v', '12', '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-qp', '0', plain]);
  // The same stream, marked to be shown a quarter turn round (as phones record portrait video).
  execFileSync(ffmpegPath(), ['-v', 'error', '-y', '-i', plain, '-c', 'copy', '-metadata:s:v:0', 'rotate=90', rotated]);
  const info = probeVideo(rotated);
  assert.deepEqual([info.width, info.height, Math.abs(info.rotation ?? 0) % 180], [32, 48, 90]);
  const output = join(folder, 'out.mkv');
  const r = apply(['--checkpoint', runDir, '--input', rotated, '--occlusion', 'remove-pixel', '--output', output]);
  assert.equal(r.code, 0, r.stderr);
  const out = probeVideo(output);
  assert.deepEqual([out.width, out.height], [32, 48]);
  // Every visible pixel of the upright frames is kept; remove-pixel hides 60 %, so about 40 % match exactly.
  const [inFrames, outFrames] = [await allFrames(rotated, 32 * 48), await allFrames(output, 32 * 48)];
  assert.equal(outFrames.length, inFrames.length);
  let same = 0;
  for (let f = 0; f < inFrames.length; f++) for (let p = 0; p < 32 * 48; p++) same += inFrames[f]![p] === outFrames[f]![p] ? 1 : 0;
  const share = same / (inFrames.length * 32 * 48);
  assert.ok(share > 0.35 && share < 0.7, `share of pixels unchanged: ${share}`);
});

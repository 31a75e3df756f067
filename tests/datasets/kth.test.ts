/**
 * KTH from fixtures made here: AVIs encoded by a real ffmpeg (MPEG-4, as the KTH files), zipped per
 * action with a 00sequences.txt. Clips are the segmentation's frame ranges, truncated or padded
 * to T, equal to ffmpeg's own decoding of the same files; both splits; peek; a corrupt video in a
 * zip and a zip entry escaping its folder are named.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { zipSync } from 'fflate';
import { lastValueFrom, toArray } from 'rxjs';
import { main } from '../../cli/main.ts';
import { findDataset, type DatasetClip } from '../../datasets/index.ts';
import { KTH_FILES, parseSequences } from '../../datasets/kth.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { decodeVideoBytes } from '../../stages/io/video.ts';
import { kthAvi, writeKthFixture, type KthVideo } from '../fixtures/kth.ts';
import { shuffledEpochs } from '../../stages/batch/shuffle.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-kth-'));
const data = join(scratch, 'kth');
after(() => rmSync(scratch, { recursive: true, force: true }));

const VIDEOS = [
  { action: 'boxing', name: 'person01_boxing_d1', frames: 60, ranges: [[1, 25], [26, 60]] },
  { action: 'boxing', name: 'person22_boxing_d2', frames: 30, ranges: [[5, 12]] },
  { action: 'walking', name: 'person11_walking_d3', frames: 40, ranges: [[1, 20], [21, 40]] },
] as const satisfies readonly KthVideo[];
const avi = (name: string): string => kthAvi(scratch, name);

before(() => writeKthFixture(scratch, data, VIDEOS));

async function clips(location: string, options: Record<string, unknown>): Promise<DatasetClip[]> {
  return lastValueFrom(findDataset('kth').open(options, location).clips.pipe(unwrap(), toArray()));
}

test('clips are the segmented frame ranges, truncated or padded, as ffmpeg decodes them; both splits', async () => {
  const T = 20;
  const got = await clips(data, { frames: T, size: 32, 'split-by': 'person' });
  // The zips are read interleaved, a video from each in turn: boxing, walking, boxing.
  const expectedIds = ['person01_boxing_d1#0', 'person01_boxing_d1#1', 'person11_walking_d3#0', 'person11_walking_d3#1', 'person22_boxing_d2#0'];
  assert.deepEqual(got.map((c) => c.id), expectedIds);
  assert.deepEqual(got.map((c) => c.split), ['val', 'val', 'train', 'train', 'test']);
  // Zip after zip when asked.
  const sequential = await clips(data, { frames: 4, size: 16, 'split-by': 'person', interleave: false });
  assert.deepEqual(sequential.map((c) => c.id), ['person01_boxing_d1#0', 'person01_boxing_d1#1', 'person22_boxing_d2#0', 'person11_walking_d3#0', 'person11_walking_d3#1']);
  for (const c of got) {
    const [name, k] = c.id.split('#') as [string, string];
    const v = VIDEOS.find((x) => x.name === name)!;
    const [start, end] = v.ranges[Number(k)]!;
    const frames = await decodeVideoBytes(readFileSync(avi(name)), name, { width: 32, height: 32, pixFmt: 'gray' });
    assert.equal(c.frames.length, T * 32 * 32);
    for (let t = 0; t < T; t++) {
      const source = frames[Math.min(start - 1 + t, end - 1)]!;
      assert.ok(Buffer.from(c.frames.subarray(t * 1024, (t + 1) * 1024)).equals(Buffer.from(source)), `${c.id} frame ${t}`);
    }
  }
  // The random split is seeded by clip: the same for the same seed, and a train/val/test filter keeps only its clips.
  const a = await clips(data, { frames: 4, size: 16, seed: 7 });
  const b = await clips(data, { frames: 4, size: 16, seed: 7 });
  assert.deepEqual(a.map((c) => c.split), b.map((c) => c.split));
  const train = await clips(data, { frames: 4, size: 16, seed: 7, split: 'train' });
  assert.deepEqual(train.map((c) => c.id), a.filter((c) => c.split === 'train').map((c) => c.id));
});

test('parts (video ranges in read order, as workers take them) give, one after the other, the whole read', async () => {
  const kth = findDataset('kth');
  for (const options of [{ frames: 8, size: 16, 'split-by': 'person' }, { frames: 8, size: 16, 'split-by': 'person', interleave: false }, { frames: 8, size: 16, split: 'train', seed: 3 }]) {
    const whole = (await clips(data, options)).map((c) => [c.id, Buffer.from(c.frames).toString('base64')]);
    // About one clip a part: a part per video.
    const parts = await kth.parts!(options, data, 1);
    assert.ok(parts.length >= 2, JSON.stringify(parts));
    const joined = [];
    for (const part of parts) joined.push(...(await clips(data, { ...options, ...part })).map((c) => [c.id, Buffer.from(c.frames).toString('base64')]));
    assert.deepEqual(joined, whole, JSON.stringify(options));
  }
  // A part is its videos' clips alone.
  const first = await clips(data, { frames: 8, size: 16, 'split-by': 'person', 'videos-from': 0, 'videos-until': 1 });
  assert.deepEqual(first.map((c) => c.id), ['person01_boxing_d1#0', 'person01_boxing_d1#1']);
});

test('peek prints KTH clips; a single zip takes --dataset-option sequences', async () => {
  const out: string[] = [];
  const code = await main(['peek', 'kth', '--source', join(data, 'walking.zip'), '--dataset-option', `sequences=${join(data, '00sequences.txt')}`, '--clips', '2', '--json'], { out: (l) => out.push(l), err: () => {} });
  assert.equal(code, 0);
  const lines = out.map((l) => JSON.parse(l) as { id: string; frames: number; height: number; channels: number; mean: number });
  assert.deepEqual(lines.map((l) => [l.id, l.frames, l.height, l.channels]), [['person11_walking_d3#0', 35, 64, 1], ['person11_walking_d3#1', 35, 64, 1]]);
  assert.ok(lines.every((l) => l.mean > 0.05 && l.mean < 0.95));
});

test('a URL source: the site\'s seven files are downloaded once into the cache, and give the same clips as the folder', async () => {
  // The site has six action zips; the fixture's other four are empty zips.
  const site = join(scratch, 'site');
  mkdirSync(site);
  for (const file of KTH_FILES) {
    const local = join(data, file);
    writeFileSync(join(site, file), existsSync(local) ? readFileSync(local) : zipSync({}));
  }
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    try {
      const body = readFileSync(join(site, decodeURIComponent((req.url ?? '/').replace('/kth/', ''))));
      res.writeHead(200, { 'Content-Length': body.length });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const cache = process.env['ST_INPAINT_CACHE'];
  process.env['ST_INPAINT_CACHE'] = join(scratch, 'cache');
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/kth`;
    const want = await clips(data, { frames: 6, size: 16 });
    const got = await clips(url, { frames: 6, size: 16 });
    assert.deepEqual(got.map((c) => c.id), want.map((c) => c.id));
    got.forEach((c, i) => assert.ok(Buffer.from(c.frames).equals(Buffer.from(want[i]!.frames)), c.id));
    assert.equal(requests.length, KTH_FILES.length);
    await clips(url, { frames: 6, size: 16 });
    assert.equal(requests.length, KTH_FILES.length, 'the second open reads the cache');
    await assert.rejects(clips(`${url.replace('/kth', '/gone')}`, {}), /gone\/boxing\.zip.*404/);
  } finally {
    if (cache === undefined) delete process.env['ST_INPAINT_CACHE'];
    else process.env['ST_INPAINT_CACHE'] = cache;
    server.close();
  }
});

test('a corrupt video inside a zip, an escaping entry and a bad segmentation line are named', async () => {
  const bad = join(scratch, 'bad');
  mkdirSync(bad);
  writeFileSync(join(bad, 'boxing.zip'), zipSync({ 'boxing/person01_boxing_d1_uncomp.avi': new TextEncoder().encode('not a video at all') }));
  writeFileSync(join(bad, '00sequences.txt'), 'person01_boxing_d1\t\tframes\t1-10\n');
  await assert.rejects(clips(bad, {}), /bad\/boxing\.zip:boxing\/person01_boxing_d1_uncomp\.avi: not a video ffmpeg can decode/);

  // --on-error skip: the corrupt video's clips are dropped, named on stderr and counted; the good videos' clips come through.
  writeFileSync(join(bad, 'walking.zip'), readFileSync(join(data, 'walking.zip')));
  writeFileSync(join(bad, '00sequences.txt'), readFileSync(join(data, '00sequences.txt'), 'utf8'));
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['peek', 'kth', '--source', bad, '--on-error', 'skip', '--clips', '10', '--json'], { out: (l) => out.push(l), err: (l) => err.push(l) });
  assert.equal(code, 0);
  assert.deepEqual(out.map((l) => (JSON.parse(l) as { id: string }).id), ['person11_walking_d3#0', 'person11_walking_d3#1']);
  // Each named with its zip (and video): the one that does not decode, and the one the zip lacks.
  assert.ok(err.some((l) => /^skipped: stage "decode", file ".*bad\/boxing\.zip" entry "boxing\/person01_boxing_d1_uncomp\.avi": .*not a video ffmpeg can decode/.test(l)), err.join('\n'));
  // A segmented video of boxing that boxing.zip lacks is named too, not passed over.
  assert.ok(err.some((l) => /^skipped: stage "decode", file ".*bad\/boxing\.zip": 00sequences\.txt lists person22_boxing_d2, which the zip does not hold/.test(l)), err.join('\n'));
  // The count is of clips lost: the corrupt video's two segments and the missing video's one.
  assert.ok(err.some((l) => /stage "decode".*not a video ffmpeg can decode.*\(2 clips lost\)$/.test(l)), err.join('\n'));
  assert.equal(err.at(-1), '3 clips skipped (--on-error skip)');
  const evil = join(scratch, 'evil');
  mkdirSync(evil);
  writeFileSync(join(evil, 'boxing.zip'), zipSync({ '../escape.avi': new Uint8Array(3) }));
  writeFileSync(join(evil, '00sequences.txt'), 'person01_boxing_d1\t\tframes\t1-10\n');
  await assert.rejects(clips(evil, {}), /evil\/boxing\.zip: entry "\.\.\/escape\.avi" would be written outside its folder/);
  assert.throws(() => parseSequences('person01_boxing_d1\t\tframes\t1-10, 30-20\n', 'seq.txt'), /seq\.txt:1: unreadable frame range "30-20"/);
  // Frames count from 1; a mistyped entry is an error at its line; the prose header is passed over.
  assert.throws(() => parseSequences('person01_boxing_d1\t\tframes\t0-40\n', 'seq.txt'), /seq\.txt:1: unreadable frame range "0-40" \(frames count from 1/);
  assert.throws(() => parseSequences('Header text\n\nperson01_boxing_d1\t\tframes\t1-10\nperson02_boxing_d1\t\tfrmes\t1-10\n', 'seq.txt'), /seq\.txt:4: unreadable line "person02_boxing_d1\t\tfrmes\t1-10"/);
  assert.throws(() => parseSequences('person01_boxing_d1 frames 1-10\nperson01_boxing_d1 frames 11-20\n', 'seq.txt'), /seq\.txt:2: person01_boxing_d1 is listed twice/);
});

test('a video shorter than its segmentation (a truncated AVI) is an error naming the clip, not padded', async () => {
  const short = join(scratch, 'short');
  mkdirSync(short);
  writeFileSync(join(short, 'walking.zip'), readFileSync(join(data, 'walking.zip')));
  // person11_walking_d3 has 40 frames.
  writeFileSync(join(short, '00sequences.txt'), 'person11_walking_d3\t\tframes\t1-20, 21-45\n');
  await assert.rejects(clips(short, { split: 'all' }), /clip "person11_walking_d3#1".*00sequences\.txt asks for frames 21-45, the video decodes to 40 \(truncated\?\)/);
});

test('an action zip without its videos, or a segmentation file given as the source, is an error naming the file', async () => {
  const none = join(scratch, 'none');
  mkdirSync(none);
  writeFileSync(join(none, 'boxing.zip'), zipSync({ 'boxing/readme.txt': new TextEncoder().encode('no videos here') }));
  writeFileSync(join(none, '00sequences.txt'), 'person01_boxing_d1\t\tframes\t1-10\n');
  await assert.rejects(clips(none, {}), /none\/boxing\.zip.*00sequences\.txt lists person01_boxing_d1, which the zip does not hold/);
  await assert.rejects(clips(join(none, '00sequences.txt'), {}), /00sequences\.txt.*not a complete zip/);
});

test('interleaved zips mix actions in the batches a small shuffle buffer gives; zip after zip does not', async () => {
  const mixed = join(scratch, 'mixed');
  const actions = ['boxing', 'handwaving', 'walking'];
  // Four videos of four clips per action, as KTH's: 48 clips, 12 batches of 4, through an 8-clip shuffle buffer.
  const videos = actions.flatMap((action, a) => [11, 12, 13, 14].map((person) => ({ action, name: `person${person}_${action}_d${a + 1}`, frames: 16, ranges: [[1, 4], [5, 8], [9, 12], [13, 16]] as Array<[number, number]> })));
  writeKthFixture(scratch, mixed, videos);
  /** The share of the batches that hold more than one action. */
  const share = async (interleave: boolean): Promise<number> => {
    const { clips: stream } = findDataset('kth').open({ frames: 2, size: 16, interleave }, mixed);
    const order = await lastValueFrom(shuffledEpochs(stream, { buffer: 8, seed: 1, start: 0, count: 48 }).pipe(unwrap(), toArray()));
    assert.equal(order.length, 48);
    let multi = 0;
    for (let b = 0; b < 48; b += 4) if (new Set(order.slice(b, b + 4).map((c) => /_([a-z]+)_d/.exec(c.id)![1])).size > 1) multi += 1;
    return multi / 12;
  };
  const interleaved = await share(true);
  const sequential = await share(false);
  // Measured: every batch mixed when interleaved; 7 of 12 zip after zip (the buffer mixes only across a zip's end).
  assert.ok(interleaved >= 0.9, `interleaved: ${interleaved}`);
  assert.ok(interleaved - sequential >= 0.25, `interleaved ${interleaved}, zip after zip ${sequential}`);
});

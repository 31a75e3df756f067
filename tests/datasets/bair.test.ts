/**
 * The BAIR dataset from a BAIR-format tar made here (TFRecords of Examples written by the
 * project's writer, packed by tar-stream): read from a file and over HTTP from 127.0.0.1 with the
 * connection dropped mid-stream, the clips are exactly the frames written, with splits by path;
 * padding repeats the last frame; `peek` prints them; a damaged record is named with its entry
 * and offset.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import { main } from '../../cli/main.ts';
import { findDataset, type DatasetClip } from '../../datasets/index.ts';
import { Telemetry, metered } from '../../pipeline/telemetry.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { BAIR_FRAME_BYTES, bairFrame, bairTfrecords, packBairTar } from '../fixtures/bair.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-bair-'));
const SIZE = BAIR_FRAME_BYTES;
const frame = bairFrame;
const tfrecords = bairTfrecords;
const packTar = packBairTar;
const FILES = [
  { path: 'softmotion30_44k/train/traj_0_to_255.tfrecords', records: 3 },
  { path: 'softmotion30_44k/test/traj_0_to_255.tfrecords', records: 2 },
  { path: 'softmotion30_44k/train/traj_256_to_511.tfrecords', records: 2 },
];
let tarPath = '';
let server: Server;
let url = '';
let dropped = false;

before(async () => {
  tarPath = join(scratch, 'bair_robot_pushing_dataset_v0.tar');
  await packTar(FILES.map((f, i) => ({ path: f.path, bytes: tfrecords(i, f.records) })), tarPath);
  const body = readFileSync(tarPath);
  server = createServer((req, res) => {
    const from = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
    const part = body.subarray(from);
    res.writeHead(from > 0 ? 206 : 200, { 'Content-Length': part.length });
    if (!dropped && from === 0) {
      // The first response dies in the middle of the second file.
      dropped = true;
      res.write(part.subarray(0, Math.floor(body.length * 0.55)), () => res.destroy());
      return;
    }
    res.end(part);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bair.tar`;
});
after(() => {
  server.closeAllConnections();
  server.close();
  rmSync(scratch, { recursive: true, force: true });
});

async function clipsOf(location: string, options: Record<string, unknown> = {}): Promise<DatasetClip[]> {
  return lastValueFrom(findDataset('bair').open(options, location).clips.pipe(unwrap(), toArray()));
}

function expected(camera = 0, frames = 30): Array<{ id: string; split: string; frames: Uint8Array }> {
  return FILES.flatMap((f, i) =>
    Array.from({ length: f.records }, (_, r) => {
      const out = new Uint8Array(frames * SIZE);
      for (let t = 0; t < frames; t++) out.set(frame(i, r, Math.min(t, 29), camera), t * SIZE);
      return { id: `${f.path}#${r}`, split: f.path.includes('/train/') ? 'train' : 'test', frames: out };
    }),
  );
}

test('clips from a file, and over HTTP with the connection dropped mid-stream, are exactly the frames written', async () => {
  const want = expected();
  for (const location of [tarPath, url]) {
    const got = await clipsOf(location);
    assert.deepEqual(got.map((c) => [c.id, c.split]), want.map((c) => [c.id, c.split]));
    got.forEach((c, i) => assert.ok(Buffer.from(c.frames).equals(Buffer.from(want[i]!.frames)), `${location} clip ${c.id}`));
  }
  assert.ok(dropped, 'the server dropped the first connection');
});

test('parts: each TFRecord file of the split, found by its tar header; read from there, they give one after the other the whole read', async () => {
  const bair = findDataset('bair');
  for (const split of ['all', 'train']) {
    const whole = await clipsOf(tarPath, { split });
    const parts = await bair.parts!({ split }, tarPath, 1);
    assert.equal(parts.length, split === 'all' ? 3 : 2, JSON.stringify(parts));
    // Each part starts at its member's header: a multiple of 512 past the first.
    assert.ok(parts.every((p) => Number(p['tar-offset']) % 512 === 0) && Number(parts[1]!['tar-offset']) > 0);
    const joined: DatasetClip[] = [];
    for (const part of parts) joined.push(...(await clipsOf(tarPath, { split, ...part })));
    assert.deepEqual(joined.map((c) => c.id), whole.map((c) => c.id));
    joined.forEach((c, i) => assert.ok(Buffer.from(c.frames).equals(Buffer.from(whole[i]!.frames)), c.id));
  }
  // A URL is one part (its headers would cost a request each).
  assert.deepEqual(await bair.parts!({}, url, 1), [{}]);
});

test('split, camera and padding options; peek prints the clips', async () => {
  const test = await clipsOf(tarPath, { split: 'test', camera: 'image_main', frames: 35 });
  const want = expected(1, 35).filter((c) => c.split === 'test');
  assert.deepEqual(test.map((c) => c.id), want.map((c) => c.id));
  test.forEach((c, i) => assert.ok(Buffer.from(c.frames).equals(Buffer.from(want[i]!.frames))));
  const out: string[] = [];
  assert.equal(await main(['peek', 'bair', '--source', tarPath, '--clips', '2', '--json'], { out: (l) => out.push(l), err: () => {} }), 0);
  const lines = out.map((l) => JSON.parse(l) as { id: string; split: string; frames: number; height: number; width: number; channels: number; mean: number });
  assert.deepEqual(lines.map((l) => [l.id, l.split, l.frames, l.height, l.width, l.channels]), [
    [FILES[0]!.path + '#0', 'train', 30, 64, 64, 3],
    [FILES[0]!.path + '#1', 'train', 30, 64, 64, 3],
  ]);
  const mean = want.length ? expected()[0]!.frames.reduce((a, v) => a + v, 0) / (30 * SIZE) / 255 : 0;
  assert.ok(Math.abs(lines[0]!.mean - mean) < 1e-6);
});

test('a damaged record is named with its entry and byte offset', async () => {
  const bytes = tfrecords(0, 2);
  bytes[20_000]! ^= 0xff; // inside the first record's data
  const damaged = join(scratch, 'damaged.tar');
  await packTar([{ path: FILES[0]!.path, bytes }], damaged);
  await assert.rejects(clipsOf(damaged), /damaged\.tar:softmotion30_44k\/train\/traj_0_to_255\.tfrecords at byte 0: bad data CRC/);

  // Under the skip policy only the damaged record is dropped (its length passed its CRC, so the
  // framing holds): the rest of its entry and the next entry are read, and one element is counted.
  await packTar([{ path: FILES[0]!.path, bytes }, { path: FILES[1]!.path, bytes: tfrecords(1, FILES[1]!.records) }], damaged);
  const telemetry = new Telemetry();
  const skipped: string[] = [];
  telemetry.events$.subscribe((e) => e.kind === 'skipped' && skipped.push(e.message));
  const got = await lastValueFrom(metered(telemetry, findDataset('bair').open({}, damaged, { onError: 'skip' }).clips).pipe(unwrap(), toArray()));
  const first = `${FILES[0]!.path}#0`;
  assert.deepEqual(got.map((c) => c.id), [`${FILES[0]!.path}#1`, ...expected().filter((c) => c.id.startsWith(FILES[1]!.path)).map((c) => c.id)]);
  assert.equal(skipped.length, 1);
  assert.ok(skipped[0]!.includes(`clip "${first}"`), skipped[0]);
  assert.match(skipped[0]!, /entry "softmotion30_44k\/train\/traj_0_to_255\.tfrecords": .*at byte 0: bad data CRC/);

  // A bad length CRC: the parser finds the next whole record, so again one record is lost and counted.
  const framing = tfrecords(0, 3);
  framing[framing.length / 3 + 9]! ^= 0xff; // the second record's length CRC (three records of equal size)
  await packTar([{ path: FILES[0]!.path, bytes: framing }, { path: FILES[1]!.path, bytes: tfrecords(1, FILES[1]!.records) }], damaged);
  const t3 = new Telemetry();
  const skipped3: string[] = [];
  t3.events$.subscribe((e) => e.kind === 'skipped' && skipped3.push(e.message));
  const kept = await lastValueFrom(metered(t3, findDataset('bair').open({}, damaged, { onError: 'skip' }).clips).pipe(unwrap(), toArray()));
  assert.deepEqual(kept.map((c) => c.id), [first, `${FILES[0]!.path}#2`, ...expected().filter((c) => c.id.startsWith(FILES[1]!.path)).map((c) => c.id)]);
  assert.equal(skipped3.length, 1);
  assert.match(skipped3[0]!, /stage "examples", clip "softmotion30_44k\/train\/traj_0_to_255\.tfrecords#1".*bad length CRC/);

  // A truncated archive: by default named; under skip the clips read so far stand, and the broken end is counted.
  const truncated = join(scratch, 'truncated.tar');
  const whole = readFileSync(tarPath);
  writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length * 0.9)));
  await assert.rejects(clipsOf(truncated), /truncated\.tar/);
  const t2 = new Telemetry();
  const skipped2: string[] = [];
  t2.events$.subscribe((e) => e.kind === 'skipped' && skipped2.push(e.message));
  const partial = await lastValueFrom(metered(t2, findDataset('bair').open({}, truncated, { onError: 'skip' }).clips).pipe(unwrap(), toArray()));
  const all = expected().map((c) => c.id);
  assert.ok(partial.length >= 5 && partial.length < all.length, `${partial.length} of ${all.length} clips`);
  assert.deepEqual(partial.map((c) => c.id), all.slice(0, partial.length));
  assert.equal(skipped2.length, 1);
  assert.match(skipped2[0]!, /truncated\.tar" entry "softmotion30_44k\/train\/traj_256_to_511\.tfrecords"/);
});

test('a tar without BAIR\'s TFRecord entries is an error naming the source, not an empty dataset', async () => {
  const empty = join(scratch, 'empty.tar');
  await packTar([], empty);
  await assert.rejects(clipsOf(empty), /--source .*empty\.tar: no softmotion30_44k\/\{train,test\}\/\*\.tfrecords entries in the tar/);
  // Under skip too: there is nothing to skip to.
  await assert.rejects(lastValueFrom(findDataset('bair').open({}, empty, { onError: 'skip' }).clips.pipe(unwrap(), toArray())), /no softmotion30_44k/);
});

/**
 * Arrow frame batches: exact round trips (in memory, IPC stream and file through the writer and
 * reader stages), schema checks, atomic writing, and the zero-copy path to a tensor.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { Schema, Field, Utf8, tableFromIPC, tableToIPC, Table } from 'apache-arrow';
import { firstValueFrom, lastValueFrom, toArray, throwError, concat, of } from 'rxjs';
import { readArrow, writeArrow } from '../../pipeline/arrow-io.ts';
import { FrameBatchPool, decodeFrameBatch, encodeFrameBatch, frameBatchSpec, framesOf, type Clip, type FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { batch } from '../../pipeline/operators/batch.ts';
import { expand } from '../../pipeline/operators/expand.ts';
import type { Leased } from '../../pipeline/credit.ts';
import { framesTensor, maskTensor } from '../../pipeline/tensor.ts';
import { leased } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'st-arrow-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Deterministic pseudo-random clips (xorshift), with masks and seeds. */
function clips(spec: FrameBatchSpec, count: number, salt = 1): Clip[] {
  const { frames, height, width, channels } = spec.shape;
  let s = 2463534242 ^ salt;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  return Array.from({ length: count }, (_, i) => {
    const n = frames * height * width * channels;
    const px = spec.pixelType === 'uint8' ? Uint8Array.from({ length: n }, () => Math.floor(next() * 256)) : Float32Array.from({ length: n }, () => next() * 2 - 1);
    const mask = Uint8Array.from({ length: frames * height * width }, () => (next() < 0.6 ? 1 : 0));
    // Some ids are not ASCII: the Utf8 columns are encoded and decoded by hand.
    return { id: i % 3 === 2 ? `雨滴-é-${salt}-${i}` : `clip-${salt}-${i}`, frames: px, mask, seed: BigInt(i) * 0xffff_ffffn + 7n, process: i % 2 ? 'raindrops' : 'remove-pixel' };
  });
}

const u8: FrameBatchSpec = { shape: { frames: 5, height: 6, width: 7, channels: 3 }, pixelType: 'uint8', range: [0, 255] };
const f32: FrameBatchSpec = { shape: { frames: 4, height: 8, width: 8, channels: 1 }, pixelType: 'float32', range: [-1, 1] };

function assertSameClips(actual: Clip[], expected: Clip[]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => {
    const e = expected[i]!;
    assert.equal(a.id, e.id);
    assert.equal(a.seed, e.seed);
    assert.equal(a.process, e.process);
    assert.deepEqual(Array.from(a.frames), Array.from(e.frames));
    assert.deepEqual(Array.from(a.mask!), Array.from(e.mask!));
  });
}

describe('frame batch codec', () => {
  for (const spec of [u8, f32]) {
    it(`round-trips ${spec.pixelType} clips exactly, through memory and IPC bytes`, () => {
      const input = clips(spec, 5);
      const batch = encodeFrameBatch(spec, input);
      assert.deepEqual(frameBatchSpec(batch.schema), spec);
      assertSameClips(decodeFrameBatch(batch).clips, input);
      const back = tableFromIPC(tableToIPC(new Table([batch]), 'stream')).batches[0]!;
      assert.deepEqual(frameBatchSpec(back.schema), spec);
      assertSameClips(decodeFrameBatch(back).clips, input);
    });
  }

  it('decodes a slice of a batch to exactly the clips it covers', () => {
    const input = clips(u8, 7, 5);
    const sliced = encodeFrameBatch(u8, input).slice(2, 6);
    assertSameClips(decodeFrameBatch(sliced).clips, input.slice(2, 6));
    // All-ASCII ids and names take the one-call decoding path; a slice starts inside its bytes.
    const ascii = input.map((c, i) => ({ ...c, id: `a-${i}-${'x'.repeat(i)}` }));
    const asciiSlice = encodeFrameBatch(u8, ascii).slice(3, 7);
    assertSameClips(decodeFrameBatch(asciiSlice).clips, ascii.slice(3, 7));
    assertSameClips(decodeFrameBatch(tableFromIPC(tableToIPC(new Table([asciiSlice]), 'stream')).batches[0]!).clips, ascii.slice(3, 7));
    assert.deepEqual(decodeFrameBatch(encodeFrameBatch(u8, [])).clips, []);
  });

  it('keeps all pixels of a batch in one contiguous buffer and decodes without copying', () => {
    const batch = encodeFrameBatch(u8, clips(u8, 3));
    const all = framesOf(batch);
    assert.equal(all.length, 3 * 5 * 6 * 7 * 3);
    const decoded = decodeFrameBatch(batch).clips;
    assert.equal(decoded[1]!.frames.buffer, all.buffer);
    assert.equal(decoded[1]!.frames.byteOffset, all.byteOffset + 5 * 6 * 7 * 3);
  });

  it('recycles batch buffers through a pool only once every clip view is released', async () => {
    const pool = new FrameBatchPool();
    const input = clips(u8, 12, 3);
    // Clips without masks must come out all-visible even in a recycled buffer that held masks.
    input[9] = { ...input[9]!, mask: undefined };
    const held: Array<Leased<Clip>> = [];
    const buffers = new Set<ArrayBufferLike>();
    const out: Clip[] = [];
    await new Promise<void>((resolve, reject) =>
      source('clips', () => input, { capacity: 2 })
        .pipe(
          batch('encode', 3, (group: Clip[]) => encodeFrameBatch(u8, group, pool), { capacity: 2, recycle: (b) => pool.recycle(b) }),
          expand('decode', (b) => decodeFrameBatch(b).clips, { capacity: 6 }),
        )
        .subscribe({
          next: (item) => {
            buffers.add(item.value.frames.buffer);
            // Copy what we check, then hold the first batch's views for a while: its buffer must not
            // be handed out again while they are held.
            out.push({ ...item.value, frames: item.value.frames.slice(), mask: item.value.mask!.slice() });
            if (held.length < 3 && out.length <= 3) held.push(item);
            else item.release();
            if (out.length === 6) for (const h of held.splice(0)) h.release();
          },
          error: reject,
          complete: resolve,
        }),
    );
    assertSameClips(out.slice(0, 9), input.slice(0, 9));
    assert.deepEqual(Array.from(out[9]!.frames), Array.from(input[9]!.frames));
    assert.ok(out[9]!.mask!.every((v) => v === 1), 'a clip without a mask is all visible');
    assertSameClips(out.slice(10), input.slice(10));
    // Four batches on at most three buffers: while batch 1's views were held, batch 2 needed a new
    // one; after that, released buffers came back.
    assert.ok(buffers.size >= 2 && buffers.size < 4, `${buffers.size} distinct buffers`);
  });

  it('gives a recycled buffer the new batch\'s spec, ids and seeds when the spec differs but the sizes match', () => {
    const pool = new FrameBatchPool();
    const other: FrameBatchSpec = { ...u8, range: [0, 1] };
    // The second batch's clips all share one process name, the third's another: such columns are
    // built once per name and shared, and must never hand one batch another's names.
    const first = clips(u8, 4, 11);
    const second = clips(u8, 4, 12).map((c) => ({ ...c, process: 'clouds' }));
    const third = clips(u8, 4, 13).map((c) => ({ ...c, process: undefined }));
    const a = encodeFrameBatch(u8, first, pool);
    assertSameClips(decodeFrameBatch(a).clips, first);
    pool.recycle(a);
    const b = encodeFrameBatch(other, second, pool);
    assert.equal(framesOf(b).buffer, framesOf(a).buffer, 'the same buffers serve the second batch');
    assert.deepEqual(frameBatchSpec(b.schema), other);
    assertSameClips(decodeFrameBatch(b).clips, second);
    const back = tableFromIPC(tableToIPC(new Table([b]), 'stream')).batches[0]!;
    assert.deepEqual(frameBatchSpec(back.schema), other);
    assertSameClips(decodeFrameBatch(back).clips, second);
    pool.recycle(b);
    const c = encodeFrameBatch(other, first, pool);
    assertSameClips(decodeFrameBatch(c).clips, first);
    pool.recycle(c);
    const d = encodeFrameBatch(other, third, pool);
    assert.deepEqual(decodeFrameBatch(d).clips.map((clip) => clip.process), ['none', 'none', 'none', 'none']);
    assertSameClips(decodeFrameBatch(d).clips, third.map((clip) => ({ ...clip, process: 'none' })));
    assertSameClips(decodeFrameBatch(encodeFrameBatch(other, second)).clips, second);
  });

  it('refuses a clip of the wrong size or type, naming it', () => {
    const bad = { id: 'short-one', frames: new Uint8Array(10) };
    assert.throws(() => encodeFrameBatch(u8, [bad]), /clip "short-one": 10 pixel values, expected 630/);
    assert.throws(() => encodeFrameBatch(u8, [{ id: 'floaty', frames: new Float32Array(630) }]), /clip "floaty": pixels are Float32Array/);
    assert.throws(() => encodeFrameBatch(u8, [{ id: 'masked', frames: new Uint8Array(630), mask: new Uint8Array(3) }]), /clip "masked": 3 mask values, expected 210/);
    assert.throws(() => encodeFrameBatch({ ...u8, shape: { ...u8.shape, width: 0 } }, []), /shape.width must be an integer ≥ 1/);
  });

  it('refuses a schema that is not a frame batch, saying what is missing', () => {
    assert.throws(() => frameBatchSpec(new Schema([new Field('clip', new Utf8())])), /schema metadata lacks "st-inpaint.shape"/);
  });
});

describe('Arrow IPC stages', () => {
  for (const format of ['stream', 'file'] as const) {
    it(`writes an IPC ${format} through the writer stage and reads it back exactly`, async () => {
      const path = join(dir, `clips.${format}.arrow`);
      const batches = [clips(f32, 3, 1), clips(f32, 3, 2), clips(f32, 1, 3)];
      const passed = await lastValueFrom(
        source('batches', () => batches.map((c) => encodeFrameBatch(f32, c))).pipe(writeArrow(path, { format }), unwrap(), toArray()),
      );
      assert.equal(passed.length, 3);
      const read = await lastValueFrom(readArrow(path).pipe(unwrap(), toArray()));
      assert.equal(read.length, 3);
      read.forEach((b, i) => assertSameClips(decodeFrameBatch(b).clips, batches[i]!));
      assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.partial-')), []);
    });
  }

  it('leaves no file, partial or final, when the graph fails midway', async () => {
    const path = join(dir, 'failed.arrow');
    const items = leased(concat(of(encodeFrameBatch(u8, clips(u8, 2))), throwError(() => new Error('decoder crashed'))));
    await assert.rejects(lastValueFrom(items.pipe(writeArrow(path), unwrap())), /decoder crashed/);
    assert.equal(existsSync(path), false);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.failed.arrow')), []);
  });

  it('names the file when it cannot be read', async () => {
    await assert.rejects(firstValueFrom(readArrow(join(dir, 'missing.arrow')).pipe(unwrap())), /stage "read-arrow".*cannot open Arrow file ".*missing.arrow": ENOENT/);
  });
});

describe('tensors from frame batches', () => {
  it('hands float32 pixels to the cpu backend without copying', async () => {
    await tf.setBackend('cpu');
    const batch = encodeFrameBatch(f32, clips(f32, 2));
    const t = framesTensor(batch);
    assert.deepEqual(t.shape, [2, 4, 8, 8, 1]);
    const held = (tf.backend() as unknown as { data: { get(id: object): { values: Float32Array } } }).data.get(t.dataId).values;
    assert.equal(held.buffer, framesOf(batch).buffer, 'the tensor holds the batch buffer itself');
    t.dispose();
  });

  it('scales uint8 pixels to [-1, 1] and masks to 0/1 floats', async () => {
    await tf.setBackend('cpu');
    const input = clips(u8, 2);
    const batch = encodeFrameBatch(u8, input);
    const t = framesTensor(batch);
    const m = maskTensor(batch);
    const values = await t.data();
    const expected = [...input[0]!.frames, ...input[1]!.frames].map((v) => (v / 255) * 2 - 1);
    values.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-6, `pixel ${i}`));
    assert.deepEqual(m.shape, [2, 5, 6, 7, 1]);
    assert.deepEqual(Array.from(await m.data()), [...input[0]!.mask!, ...input[1]!.mask!]);
    tf.dispose([t, m]);
  });

  it('leaks no tensor', async () => {
    await tf.setBackend('cpu');
    const batch = encodeFrameBatch(u8, clips(u8, 1));
    tf.dispose([framesTensor(batch), maskTensor(batch)]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) tf.dispose([framesTensor(batch), maskTensor(batch)]);
    assert.equal(tf.memory().numTensors, before);
  });
});

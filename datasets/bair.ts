/**
 * BAIR robot pushing (method.md §6): one 30 GiB tar of TFRecord files
 * (`softmotion30_44k/{train,test}/*.tfrecords`), each record a `tf.train.Example` holding 30 raw
 * 64×64×3 uint8 frames under `{t}/image_aux1/encoded` (the camera is an option). The tar is
 * streamed, from a URL or a local file, and never extracted or fully downloaded: tar entries →
 * TFRecord records (CRC-checked) → clips. Over HTTP a dropped connection resumes with a Range
 * request, so the clips are those of an uninterrupted read.
 *
 * Split by path: `train/` and `test/`. Clips can be padded to more frames by repeating the last
 * (the paper pads to 35).
 */
import { closeSync, createReadStream, existsSync, openSync, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import { defer } from 'rxjs';
import { StageError, UsageError } from '../pipeline/errors.ts';
import type { FrameBatchSpec } from '../pipeline/frame-batch.ts';
import { resolveOptions } from '../pipeline/graph.ts';
import { expand } from '../pipeline/operators/expand.ts';
import { map } from '../pipeline/operators/map.ts';
import { source, type SourceOptions } from '../pipeline/operators/source.ts';
import { named, type Stream } from '../pipeline/stage.ts';
import { TFRecordParser, decodeExample, type TFRecord } from '../stages/decode/tfrecord.ts';
import { httpChunks } from '../stages/io/fetch.ts';
import { tarChunks, tarMembers, type TarChunk } from '../stages/io/tar.ts';
import type { DatasetClip, Split } from './synthetic.ts';

export const bairOptions = {
  split: { type: 'string', default: 'all', choices: ['all', 'train', 'test'], describe: 'which split (by path in the tar)' },
  camera: { type: 'string', default: 'image_aux1', choices: ['image_aux1', 'image_main'], describe: 'which camera' },
  frames: { type: 'number', default: 30, integer: true, min: 1, max: 1000, describe: 'frames per clip: the first 30, padded by repeating the last if more' },
  'tar-offset': { type: 'number', default: 0, integer: true, min: 0, describe: "byte offset of a member's header to start reading the tar at (a part, as a worker takes it)" },
  entries: { type: 'number', default: 0, integer: true, min: 0, describe: "TFRecord files of the split read from there (0: to the end)" },
} as const;

const SIZE = 64 * 64 * 3;
const RECORDED = 30;

/** The bytes of a URL (resuming after drops) or of a local file, from `start` on. */
function bytesOf(location: string, start = 0): Readable {
  if (/^https?:\/\//.test(location)) {
    return Readable.from((async function* () {
      for await (const chunk of httpChunks(location, {}, start)) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    })(), { objectMode: false });
  }
  if (!existsSync(location)) throw new UsageError(`--source ${location}: no such file`);
  return createReadStream(location, { start });
}

const ENTRY = /softmotion30_44k\/(train|test)\/[^/]+\.tfrecords?$/;

/**
 * The read cut into parts for workers: each TFRecord file of the split (256 sequences in BAIR's
 * files) is a part, or runs of them of about `size` clips (counting 256 a file), located by their
 * tar headers alone (`tar-offset`, `entries`), so a worker starts reading the tar at its part. A
 * local tar only; a URL is read by one worker.
 */
export async function bairParts(location: string, given: Readonly<Record<string, unknown>>, size: number): Promise<Array<Record<string, number>>> {
  const o = resolveOptions('dataset "bair"', bairOptions, given);
  if (/^https?:\/\//.test(location) || o['tar-offset'] > 0 || o.entries > 0) return [{}];
  if (!existsSync(location)) throw new UsageError(`--source ${location}: no such file`);
  const fd = openSync(location, 'r');
  try {
    const read = async (offset: number, length: number): Promise<Uint8Array> => {
      const buffer = Buffer.alloc(length);
      return buffer.subarray(0, readSync(fd, buffer, 0, length, offset));
    };
    const members = (await tarMembers(read, location)).filter((m) => {
      const match = ENTRY.exec(m.path);
      return match && (m.type === '0' || m.type === '') && (o.split === 'all' || match[1] === o.split);
    });
    const perPart = Math.max(1, Math.round(size / 256));
    const parts: Array<Record<string, number>> = [];
    for (let i = 0; i < members.length; i += perPart) parts.push({ 'tar-offset': members[i]!.offset, entries: i + perPart < members.length ? perPart : 0 });
    return parts.length > 0 ? parts : [{}];
  } finally {
    closeSync(fd);
  }
}

/** A TFRecord entry's chunk, with the split its path says. */
type EntryChunk = TarChunk & { readonly split: Split };

/** One record of a TFRecord entry, numbered within it. */
interface EntryRecord {
  readonly id: string;
  readonly entry: string;
  readonly split: Split;
  readonly record: TFRecord;
}

/**
 * Clips of a BAIR-format tar, as a chain: the tar's TFRecord entries in chunks → their records
 * (CRC-checked; a damaged record is dropped alone: after a bad length CRC the parser finds the
 * next whole record) → Examples decoded into clips. Under `--on-error skip` each stage drops, names and
 * counts what it cannot read.
 */
export function bairClips(location: string, given: Readonly<Record<string, unknown>>, stage: SourceOptions = {}): { spec: FrameBatchSpec; clips: Stream<DatasetClip> } {
  const o = resolveOptions('dataset "bair"', bairOptions, given);
  const T = o.frames;
  const spec: FrameBatchSpec = { shape: { frames: T, height: 64, width: 64, channels: 3 }, pixelType: 'uint8', range: [0, 255] };
  const policy = { onError: stage.onError };
  const chunks = source('bair-tar', async function* ({ skip }): AsyncGenerator<EntryChunk> {
    const input = bytesOf(location, o['tar-offset']);
    let entry = '';
    let entries = 0;
    // With `entries`, the read stops after that many files of the split (a part).
    let taken = 0;
    try {
      for await (const chunk of tarChunks(input, location)) {
        const match = ENTRY.exec(chunk.path);
        if (match && chunk.offset === 0) entries += 1;
        if (!match || (o.split !== 'all' && match[1] !== o.split)) continue;
        if (chunk.offset === 0 && o.entries > 0 && taken++ === o.entries) return;
        entry = chunk.path;
        yield { ...chunk, split: match[1] as Split };
      }
      // An empty tar, or another archive: nothing to read is an error, not an empty dataset.
      if (entries === 0) throw new UsageError(`--source ${location}: no softmotion30_44k/{train,test}/*.tfrecords entries in the tar (is it BAIR's?)`);
    } catch (err) {
      if (err instanceof UsageError) throw err;
      if (err instanceof StageError) throw err; // a skip() under the fail policy
      // The archive itself broke (truncated, unreadable): nothing after this point can be read.
      // Under --on-error skip the entry in progress is dropped and counted and the clips so far stand.
      skip({ file: location, entry }, err);
    }
  }, stage);
  const records = named<EntryChunk, EntryRecord>('tfrecords', (upstream) =>
    defer(() => {
      // The parser of the entry being read (its chunks come in order, the first at offset 0), one per subscription.
      let parser: { entry: string; parser: TFRecordParser; index: number } | undefined;
      return upstream.pipe(
        expand(
          'tfrecords',
          function* (chunk: EntryChunk): Generator<EntryRecord> {
            if (chunk.offset === 0) parser = { entry: chunk.path, parser: new TFRecordParser(`${location}:${chunk.path}`), index: 0 };
            const p = parser!;
            // A damaged record comes out marked (the examples stage drops and counts it alone).
            for (const record of p.parser.push(chunk.bytes)) yield { id: `${p.entry}#${p.index++}`, entry: p.entry, split: chunk.split, record };
            if (chunk.last) p.parser.end();
          },
          { ...policy, describe: (c) => ({ file: location, entry: c.path }) },
        ),
      );
    }),
  );
  const examples = map(
    'examples',
    ({ id, split, record }: EntryRecord): DatasetClip => {
      if (record.damaged) throw record.damaged;
      return { id, split, frames: bairFrames(decodeExample(record.data), T, o.camera, `record at byte ${record.offset}`) };
    },
    { ...policy, describe: (r) => ({ clip: r.id, file: location, entry: r.entry }) },
  );
  return { spec, clips: chunks.pipe(records, examples) };
}

/** The T frames of one Example (the last recorded one repeated past 30). */
function bairFrames(features: ReturnType<typeof decodeExample>, T: number, camera: string, where: string): Uint8Array {
  const frames = new Uint8Array(T * SIZE);
  for (let t = 0; t < T; t++) {
    const key = `${Math.min(t, RECORDED - 1)}/${camera}/encoded`;
    const f = features.get(key);
    const bytes = f && 'bytes' in f ? f.bytes[0] : undefined;
    if (!bytes || bytes.length !== SIZE) throw new Error(`${where}: feature "${key}" is ${bytes ? `${bytes.length} bytes` : 'missing'}, expected ${SIZE}`);
    frames.set(bytes, t * SIZE);
  }
  return frames;
}

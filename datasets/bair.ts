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
import { createReadStream, existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import { StageError, UsageError } from '../pipeline/errors.ts';
import type { FrameBatchSpec } from '../pipeline/frame-batch.ts';
import { resolveOptions } from '../pipeline/graph.ts';
import { source, type SourceOptions } from '../pipeline/operators/source.ts';
import type { Stream } from '../pipeline/stage.ts';
import { TFRecordParser, decodeExample } from '../stages/decode/tfrecord.ts';
import { httpChunks } from '../stages/io/fetch.ts';
import { tarChunks } from '../stages/io/tar.ts';
import type { DatasetClip, Split } from './synthetic.ts';

export const bairOptions = {
  split: { type: 'string', default: 'all', choices: ['all', 'train', 'test'], describe: 'which split (by path in the tar)' },
  camera: { type: 'string', default: 'image_aux1', choices: ['image_aux1', 'image_main'], describe: 'which camera' },
  frames: { type: 'number', default: 30, integer: true, min: 1, max: 1000, describe: 'frames per clip: the first 30, padded by repeating the last if more' },
} as const;

const SIZE = 64 * 64 * 3;
const RECORDED = 30;

/** The bytes of a URL (resuming after drops) or of a local file. */
function bytesOf(location: string): Readable {
  if (/^https?:\/\//.test(location)) {
    return Readable.from((async function* () {
      for await (const chunk of httpChunks(location)) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    })(), { objectMode: false });
  }
  if (!existsSync(location)) throw new UsageError(`--source ${location}: no such file`);
  return createReadStream(location);
}

/** Clips of a BAIR-format tar. */
export function bairClips(location: string, given: Readonly<Record<string, unknown>>, stage: SourceOptions = {}): { spec: FrameBatchSpec; clips: Stream<DatasetClip> } {
  const o = resolveOptions('dataset "bair"', bairOptions, given);
  const T = o.frames;
  const spec: FrameBatchSpec = { shape: { frames: T, height: 64, width: 64, channels: 3 }, pixelType: 'uint8', range: [0, 255] };
  const clips = source('bair', async function* ({ skip }) {
    const input = bytesOf(location);
    let entry = '';
    let parser: TFRecordParser | undefined;
    let index = 0;
    try {
      for await (const chunk of tarChunks(input, location)) {
        const match = /softmotion30_44k\/(train|test)\/[^/]+\.tfrecords?$/.exec(chunk.path);
        if (!match || (o.split !== 'all' && match[1] !== o.split)) continue;
        if (chunk.path !== entry) {
          entry = chunk.path;
          parser = new TFRecordParser(`${location}:${entry}`);
          index = 0;
        }
        // After a framing error (bad length CRC, truncation) the rest of the entry cannot be cut
        // into records: under --on-error skip it is dropped and the next entry read.
        if (!parser) continue;
        const split = match[1] as Split;
        let records: ReturnType<TFRecordParser['push']>;
        try {
          records = [...parser.push(chunk.bytes)];
          if (chunk.last) parser.end();
        } catch (err) {
          parser = undefined;
          skip({ file: location, entry }, err);
          continue;
        }
        for (const record of records) {
          const id = `${entry}#${index++}`;
          try {
            yield { id, split, frames: bairFrames(decodeExample(record.data), T, o.camera, `record ${index - 1} (byte ${record.offset})`) } satisfies DatasetClip;
          } catch (err) {
            skip({ clip: id, file: location, entry }, err);
          }
        }
      }
    } catch (err) {
      if (err instanceof StageError) throw err; // a skip() under the fail policy
      // The archive itself broke (truncated, unreadable): nothing after this point can be read.
      // Under --on-error skip the entry in progress is dropped and counted and the clips so far stand.
      skip({ file: location, entry }, err);
    }
  }, stage);
  return { spec, clips };
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

/**
 * stream-check: generated clips → Arrow frame batches → IPC file on disk → read back → every pixel
 * compared with a fresh copy. Proves an installation streams and stores data correctly, and shows
 * the progress display and the run folder.
 */
import { concat, count, map as rxMap } from 'rxjs';
import { join } from 'node:path';
import { readArrow, writeArrow } from '../pipeline/arrow-io.ts';
import { decodeFrameBatch, encodeFrameBatch, pixelsPerClip, type Clip, type FrameBatchSpec } from '../pipeline/frame-batch.ts';
import { defineGraph } from '../pipeline/graph.ts';
import { batch } from '../pipeline/operators/batch.ts';
import { map } from '../pipeline/operators/map.ts';
import { source } from '../pipeline/operators/source.ts';
import { unwrap } from '../pipeline/operators/unwrap.ts';

/** A deterministic moving gradient: clip `index`, frame t, row y, column x, channel c. */
function patternClip(index: number, spec: FrameBatchSpec): Clip {
  const { frames, height, width, channels } = spec.shape;
  const pixels = new Uint8Array(pixelsPerClip(spec.shape));
  let i = 0;
  for (let t = 0; t < frames; t++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) for (let c = 0; c < channels; c++) pixels[i++] = (index * 7 + t * 3 + y + 2 * x + 50 * c) & 255;
  return { id: `pattern-${index}`, frames: pixels, seed: BigInt(index), process: 'none' };
}

export default defineGraph({
  name: 'stream-check',
  description: 'Stream generated clips through Arrow frame batches to an IPC file and verify every pixel read back',
  params: {
    clips: { type: 'number', default: 512, integer: true, min: 1, describe: 'number of clips' },
    frames: { type: 'number', default: 35, integer: true, min: 1, describe: 'frames per clip' },
    size: { type: 'number', default: 64, integer: true, min: 1, describe: 'frame height and width in pixels' },
    channels: { type: 'number', default: 3, integer: true, min: 1, max: 4, describe: 'channels per pixel' },
    batch: { type: 'number', default: 16, integer: true, min: 1, describe: 'clips per Arrow record batch' },
  },
  build(p, { runDir, log }) {
    const spec: FrameBatchSpec = { shape: { frames: p.frames, height: p.size, width: p.size, channels: p.channels }, pixelType: 'uint8', range: [0, 255] };
    const file = join(runDir, 'clips.arrow');
    const write = source('generate', function* () {
      for (let i = 0; i < p.clips; i++) yield patternClip(i, spec);
    }).pipe(
      batch('batch-clips', p.batch, (clips: Clip[]) => encodeFrameBatch(spec, clips)),
      writeArrow(file),
      unwrap(),
      count(),
      rxMap((batches) => ({ phase: 'written', batches, file })),
    );
    let verified = 0;
    const check = readArrow(file).pipe(
      map('verify', (recordBatch) => {
        for (const clip of decodeFrameBatch(recordBatch).clips) {
          const expected = patternClip(Number(clip.seed), spec);
          if (clip.id !== expected.id || Buffer.compare(Buffer.from(clip.frames.buffer, clip.frames.byteOffset, clip.frames.byteLength), Buffer.from(expected.frames)) !== 0) {
            throw new Error(`clip "${clip.id}" differs after the round trip`);
          }
          verified += 1;
        }
        return recordBatch.numRows;
      }),
      unwrap(),
      count(),
      rxMap((batches) => {
        if (verified !== p.clips) throw new Error(`read back ${verified} clips, wrote ${p.clips}`);
        log(`verified ${verified} clips (${batches} batches) in ${file}`);
        return { phase: 'verified', clips: verified, batches };
      }),
    );
    return concat(write, check);
  },
});

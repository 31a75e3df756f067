/**
 * BAIR streaming: a BAIR-format tar of at least 2 GiB, generated on the fly by a local HTTP server
 * (TFRecords of Examples with 30 frames of 64×64×3, as the real one), streamed through the `bair`
 * dataset (tar entries → TFRecord → Example → clips) and Arrow batching. Prints clips/s, bytes/s,
 * peak RSS and the bytes written to disk meanwhile. Targets: peak RSS under 400 MiB, nothing
 * written to disk.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { lastValueFrom } from 'rxjs';
import tar from 'tar-stream';
import { bairClips } from '../datasets/bair.ts';
import { FrameBatchPool, encodeFrameBatch, type Clip } from '../pipeline/frame-batch.ts';
import { batch } from '../pipeline/operators/batch.ts';
import { unwrap } from '../pipeline/operators/unwrap.ts';
import { encodeExample, encodeRecord, type Feature } from '../stages/decode/tfrecord.ts';
import { recordFigures } from './record.ts';

const SIZE = 64 * 64 * 3;
const RECORDS_PER_FILE = 256;
const TARGET_BYTES = 2 * 2 ** 30;

/** Record r of file f: an Example of 30 frames cycling through a few cached patterns. */
function record(f: number, r: number, patterns: Uint8Array[]): Uint8Array {
  const features = new Map<string, Feature>();
  for (let t = 0; t < 30; t++) features.set(`${t}/image_aux1/encoded`, { bytes: [patterns[(f + r + t) % patterns.length]!] });
  return encodeRecord(encodeExample(features));
}

export async function bairStreamBench(json: boolean): Promise<void> {
  const patterns = Array.from({ length: 7 }, (_, k) => Uint8Array.from({ length: SIZE }, (_, i) => (i * (k + 3) + k * 41) & 255));
  // The fixture is generated record by record as the socket takes it, so the server side holds
  // about one record: what is measured is the consumer's memory.
  const recordBytes = record(0, 0, patterns).length;
  const fileBytes = recordBytes * RECORDS_PER_FILE;
  const files = Math.ceil(TARGET_BYTES / fileBytes);
  let served = 0;
  const server = createServer((_req, res) => {
    res.writeHead(200);
    const pack = tar.pack();
    pack.on('data', (c: unknown) => {
      served += (c as Buffer).length;
      if (!res.write(c as Buffer)) {
        pack.pause();
        res.once('drain', () => pack.resume());
      }
    });
    pack.on('end', () => res.end());
    void (async () => {
      for (let f = 0; f < files; f++) {
        const split = f % 20 === 0 ? 'test' : 'train';
        const entry = pack.entry({ name: `softmotion30_44k/${split}/traj_${f * RECORDS_PER_FILE}_to_${(f + 1) * RECORDS_PER_FILE - 1}.tfrecords`, size: fileBytes });
        const finished = new Promise<void>((resolve) => entry.on('finish', () => resolve()));
        for (let r = 0; r < RECORDS_PER_FILE; r++) {
          if (!entry.write(Buffer.from(record(f, r, patterns)))) await new Promise<void>((resolve) => entry.once('drain', () => resolve()));
        }
        entry.end(() => {});
        await finished;
      }
      pack.finalize();
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bair.tar`;
  const before = process.resourceUsage();
  const t0 = performance.now();
  const { spec, clips } = bairClips(url, {});
  const pool = new FrameBatchPool();
  let count = 0;
  let peak = 0;
  const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
  await lastValueFrom(
    clips.pipe(
      batch('batch-clips', 16, (group: Clip[]) => encodeFrameBatch(spec, group, pool), { recycle: (b) => pool.recycle(b) }),
      unwrap(),
    ),
    { defaultValue: undefined },
  ).then(() => undefined);
  // Count clips from what was served: every file holds RECORDS_PER_FILE clips.
  count = files * RECORDS_PER_FILE;
  clearInterval(sample);
  const seconds = (performance.now() - t0) / 1000;
  const after = process.resourceUsage();
  server.close();
  const peakRss = Math.max(peak, after.maxRSS * 1024);
  const diskWrites = after.fsWrite - before.fsWrite;
  console.log(`bair-stream bench: ${files} TFRecord files, ${count} clips of 30×64×64×3, ${(served / 2 ** 30).toFixed(2)} GiB of tar over HTTP from 127.0.0.1`);
  console.log(`  ${(count / seconds).toFixed(0)} clips/s, ${(served / seconds / 2 ** 20).toFixed(0)} MiB/s, ${seconds.toFixed(1)} s`);
  console.log(`  peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB (target < 400); file-system writes during the stream: ${diskWrites} (target 0)`);
  const figures = { clipsPerSecond: Math.round(count / seconds), bytesPerSecond: Math.round(served / seconds), peakRssMiB: Math.round(peakRss / 2 ** 20), diskWrites, gib: Number((served / 2 ** 30).toFixed(2)) };
  recordFigures('bair-stream', figures);
  if (json) console.log(JSON.stringify(figures));
}

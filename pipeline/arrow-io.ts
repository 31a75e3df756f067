/**
 * Arrow IPC as stages: `writeArrow` stores record batches in an IPC stream or file and passes them
 * on; `readArrow` starts a graph from such a file (either format) or any byte stream, one batch at
 * a time against credit.
 *
 * The writer takes the bytes of each batch from Arrow's own serializer as they are produced and
 * writes them at the disk's pace (waiting for `drain`), so a slow disk slows the graph instead of
 * filling memory; the file appears under its name only once complete (see `files.ts`).
 */
import { open as openFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { RecordBatchFileWriter, RecordBatchReader, RecordBatchStreamWriter, type RecordBatch } from 'apache-arrow';
import { AsyncByteQueue } from 'apache-arrow/io/stream';
import { Observable, concat, defer, ignoreElements } from 'rxjs';
import type { Leased } from './credit.ts';
import { openAtomicFile, type AtomicFile } from './files.ts';
import { mapAsync } from './operators/map-async.ts';
import { source } from './operators/source.ts';
import { named, type Source, type Stage, type StageOptions } from './stage.ts';

export type ArrowFormat = 'stream' | 'file';

/** Collects what Arrow's writer serializes, synchronously, instead of queueing it without bound. */
class ByteCollector extends AsyncByteQueue {
  private chunks: Uint8Array[] = [];

  override write(value: Uint8Array): void {
    if (value.byteLength > 0) this.chunks.push(value);
  }

  take(): Uint8Array[] {
    const taken = this.chunks;
    this.chunks = [];
    return taken;
  }
}

export interface WriteArrowOptions extends StageOptions<RecordBatch> {
  /** `stream` (default): the IPC streaming format; `file`: the random-access file format. */
  readonly format?: ArrowFormat;
}

/**
 * @example
 * clips.pipe(batch('batch', 8, (c) => encodeFrameBatch(spec, c)), writeArrow('runs/x/clips.arrow'), unwrap())
 * @param path target file; written under a temporary name, renamed when the upstream completes.
 * @returns a stage that passes each batch on once its bytes were handed to the disk.
 */
export function writeArrow(path: string, options: WriteArrowOptions = {}): Stage<RecordBatch, RecordBatch> {
  const name = 'write-arrow';
  return named(name, (upstream: Observable<Leased<RecordBatch>>) =>
    defer(() => {
      let file: AtomicFile | undefined;
      const sink = new ByteCollector();
      const writer = options.format === 'file' ? new RecordBatchFileWriter() : new RecordBatchStreamWriter();
      writer.reset(sink);
      const flush = async (): Promise<void> => {
        for (const chunk of sink.take()) await file!.write(chunk);
      };
      const written = upstream.pipe(
        mapAsync(
          name,
          async (batch: RecordBatch) => {
            file ??= await openAtomicFile(path);
            writer.write(batch);
            await flush();
            return batch;
          },
          { ...options, describe: (_, index) => ({ file: path, index }) },
        ),
      );
      const commit = defer(async () => {
        file ??= await openAtomicFile(path);
        writer.finish();
        await flush();
        await file.commit();
      }).pipe(ignoreElements());
      return new Observable<Leased<RecordBatch>>((subscriber) => {
        const subscription = concat(written, commit).subscribe(subscriber);
        return () => {
          subscription.unsubscribe();
          file?.abort();
        };
      });
    }),
  );
}

export interface ReadArrowOptions {
  /** Most batches in flight downstream. */
  readonly capacity?: number;
}

/**
 * @param input a path to an Arrow IPC stream or file, or a function opening a byte stream of one.
 * @returns a source of record batches, read one at a time against credit.
 */
export function readArrow(input: string | (() => Readable), options: ReadArrowOptions = {}): Source<RecordBatch> {
  return source(
    'read-arrow',
    () =>
      (async function* batches() {
        let reader;
        if (typeof input === 'string') {
          // A file handle gives the file format its random access; the stream format reads the same way.
          const handle = await openFile(input, 'r').catch((err: NodeJS.ErrnoException) => {
            throw new Error(`cannot open Arrow file "${input}": ${err.code ?? err.message}`);
          });
          try {
            reader = await RecordBatchReader.from(handle);
            yield* reader as AsyncIterable<RecordBatch>;
          } finally {
            await reader?.cancel().catch(() => {});
            await handle.close().catch(() => {});
          }
        } else {
          reader = await RecordBatchReader.from(input() as unknown as NodeJS.ReadableStream);
          yield* reader as AsyncIterable<RecordBatch>;
        }
      })(),
    options,
  );
}

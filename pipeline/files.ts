/**
 * Files that are either complete or absent: written under a temporary name beside the target and
 * renamed into place only once everything was flushed, so a crash, an error or a cancelled run
 * never leaves a partial file that could be mistaken for a complete one. Also used for
 * checkpoints (a folder renamed the same way).
 */
import { once } from 'node:events';
import { createWriteStream, rmSync, type WriteStream } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

let counter = 0;

/** A temporary path beside `target`, unique to this process. */
export function temporaryPathFor(target: string): string {
  counter += 1;
  return join(dirname(target), `.${basename(target)}.partial-${process.pid}-${counter}`);
}

export interface AtomicFile {
  readonly path: string;
  readonly temporaryPath: string;
  /** Writes respecting the disk's pace: resolves once the stream can take more. */
  write(chunk: Uint8Array): Promise<void>;
  /** Flushes, closes and renames into place. */
  commit(): Promise<void>;
  /** Closes and removes the temporary file (safe to call at any time, also after commit). */
  abort(): void;
}

export async function openAtomicFile(path: string): Promise<AtomicFile> {
  await mkdir(dirname(path), { recursive: true });
  const temporaryPath = temporaryPathFor(path);
  const stream: WriteStream = createWriteStream(temporaryPath, { flags: 'wx' });
  await once(stream, 'open');
  let committed = false;
  let failure: Error | undefined;
  stream.on('error', (err) => (failure = err));
  return {
    path,
    temporaryPath,
    async write(chunk) {
      if (failure) throw failure;
      if (!stream.write(chunk)) await once(stream, 'drain');
    },
    async commit() {
      if (failure) throw failure;
      // Listen before ending: 'close' follows 'finish' and must not be missed in between.
      const closed = once(stream, 'close');
      stream.end();
      await closed;
      await rename(temporaryPath, path);
      committed = true;
    },
    abort() {
      if (committed) return;
      stream.destroy();
      rmSync(temporaryPath, { force: true });
    },
  };
}

/** Writes a whole file under a temporary name and renames it into place: readers never see half of it. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const file = await openAtomicFile(path);
  try {
    await file.write(typeof data === 'string' ? Buffer.from(data) : data);
    await file.commit();
  } finally {
    file.abort();
  }
}

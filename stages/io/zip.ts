/**
 * Zip archives read as a stream (fflate's streaming `Unzip`): the file is read in chunks, and each
 * entry is handed over whole (decompressed) as soon as it is complete; the next chunk of the
 * archive is read only once the consumer has taken every entry finished so far, so memory is
 * bounded by the largest entry, not by the archive. Entries that would escape their folder are
 * refused by name; a truncated archive fails naming it.
 */
import { createReadStream } from 'node:fs';
import { Unzip, UnzipInflate, type UnzipFile } from 'fflate';
import { checkEntryPath } from './tar.ts';

export interface ZipEntry {
  readonly path: string;
  readonly bytes: Uint8Array;
}

/** The file entries of a zip file (directories skipped), each decompressed whole. */
export async function* zipEntries(file: string): AsyncGenerator<ZipEntry> {
  const ready: ZipEntry[] = [];
  let failure: Error | undefined;
  let open = 0;
  const unzip = new Unzip((entry: UnzipFile) => {
    if (entry.name.endsWith('/')) return;
    try {
      checkEntryPath(file, entry.name);
    } catch (err) {
      failure ??= err as Error;
      return;
    }
    const parts: Uint8Array[] = [];
    open++;
    entry.ondata = (err, data, final) => {
      if (err) return void (failure ??= new Error(`${file}: entry "${entry.name}": ${err.message}`));
      parts.push(data);
      if (final) {
        open--;
        const bytes = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
        let at = 0;
        for (const p of parts) (bytes.set(p, at), (at += p.length));
        ready.push({ path: entry.name, bytes });
      }
    };
    entry.start();
  });
  unzip.register(UnzipInflate);
  const stream = createReadStream(file);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      unzip.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      if (failure) throw failure;
      while (ready.length) yield ready.shift()!;
    }
    unzip.push(new Uint8Array(0), true);
    if (failure) throw failure;
    while (ready.length) yield ready.shift()!;
    if (open > 0) throw new Error(`${file}: truncated zip (an entry did not end)`);
  } finally {
    stream.destroy();
  }
}

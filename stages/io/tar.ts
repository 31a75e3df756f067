/**
 * Tar archives read as a stream, never extracted: entries come out as chunks of their bytes, in
 * archive order, pulled one at a time (tar-stream's async iterators), so the byte source below is
 * paused whenever the consumer is: a 30 GiB archive streams through in constant memory.
 *
 * An entry whose path could escape a target folder (absolute, or with a `..` segment) is refused
 * with an error naming it; a truncated archive fails naming the archive and the entry it was in.
 */
import type { Readable } from 'node:stream';
import tar from 'tar-stream';

export interface TarChunk {
  /** The entry's path inside the archive. */
  readonly path: string;
  /** The entry's size in bytes, from its header. */
  readonly size: number;
  /** Byte offset of this chunk within the entry. */
  readonly offset: number;
  readonly bytes: Uint8Array;
  /** True on the entry's last chunk (also for an empty entry, whose only chunk is empty). */
  readonly last: boolean;
}

/** Throws for a path that is absolute or climbs out of its folder. */
export function checkEntryPath(archive: string, path: string): void {
  if (path.startsWith('/') || /^[A-Za-z]:[\\/]/.test(path) || path.split(/[\\/]/).includes('..')) {
    throw new Error(`${archive}: entry "${path}" would be written outside its folder; refused`);
  }
}

/**
 * The file entries of a tar stream as chunks (directories and links are skipped).
 * @param archive a name for errors (file path or URL).
 */
export async function* tarChunks(input: Readable, archive: string): AsyncGenerator<TarChunk> {
  const extract = tar.extract();
  input.on('error', (err) => extract.destroy(err));
  input.pipe(extract);
  let current = '';
  try {
    for await (const entry of extract) {
      const { name, size = 0, type } = entry.header;
      current = name;
      checkEntryPath(archive, name);
      if (type !== 'file') {
        entry.resume();
        continue;
      }
      let offset = 0;
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        offset += bytes.length;
        yield { path: name, size, offset: offset - bytes.length, bytes, last: offset === size };
      }
      if (size === 0) yield { path: name, size, offset: 0, bytes: new Uint8Array(0), last: true };
      else if (offset !== size) throw new Error(`entry ended after ${offset} of ${size} bytes`);
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (message.startsWith(`${archive}:`)) throw err;
    throw new Error(`${archive}: ${current ? `in entry "${current}": ` : ''}${message}`);
  } finally {
    input.unpipe(extract);
    input.destroy();
  }
}

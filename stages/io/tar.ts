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

/** A member of a tar archive, located without reading its data. */
export interface TarMember {
  readonly path: string;
  /** Offset of the member's first header block (a GNU long-name or pax header before it included). */
  readonly offset: number;
  readonly size: number;
  /** ustar type flag: '0' (or '') a file, '5' a directory, … */
  readonly type: string;
}

/**
 * The members of a tar archive from its headers alone: `read(offset, 512)` gives one header block,
 * the data is jumped over. A 30 GiB archive of a few hundred members costs as many reads of 512
 * bytes. Understands ustar names with their prefix, GNU long names ('L') and pax path records ('x').
 */
export async function tarMembers(read: (offset: number, length: number) => Promise<Uint8Array>, archive: string): Promise<TarMember[]> {
  const members: TarMember[] = [];
  const text = (b: Uint8Array, from: number, length: number): string => {
    const end = b.subarray(from, from + length).indexOf(0);
    return Buffer.from(b.subarray(from, end < 0 ? from + length : from + end)).toString('utf8');
  };
  const sizeOf = (b: Uint8Array): number => {
    if (b[124]! & 0x80) {
      // Base-256 (GNU) for sizes past 8 GiB.
      let n = 0;
      for (let i = 125; i < 136; i++) n = n * 256 + b[i]!;
      return n;
    }
    return parseInt(text(b, 124, 12).trim() || '0', 8);
  };
  let offset = 0;
  let first: number | undefined;
  let longName: string | undefined;
  for (;;) {
    const header = await read(offset, 512);
    if (header.length < 512) throw new Error(`${archive}: cut short at byte ${offset} (a header block needs 512 bytes)`);
    if (header.every((v) => v === 0)) return members;
    const size = sizeOf(header);
    const type = String.fromCharCode(header[156]!).replace('\0', '');
    const data = offset + 512;
    first ??= offset;
    const next = data + Math.ceil(size / 512) * 512;
    if (type === 'L' || type === 'x') {
      const body = await read(data, size);
      if (type === 'L') longName = text(body, 0, size);
      else for (const record of Buffer.from(body).toString('utf8').split('\n')) {
        const m = /^\d+ path=(.*)$/.exec(record);
        if (m) longName = m[1];
      }
    } else if (type !== 'g') {
      const prefix = text(header, 345, 155);
      const path = longName ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100));
      members.push({ path, offset: first, size, type });
      first = undefined;
      longName = undefined;
    }
    offset = next;
  }
}

/**
 * Zip archives read as a stream (fflate's streaming `Unzip`): the file is read in chunks, and each
 * entry is handed over whole (decompressed) as soon as it is complete; the next chunk of the
 * archive is read only once the consumer has taken every entry finished so far, so memory is
 * bounded by the largest entry, not by the archive. Entries that would escape their folder are
 * refused by name; a truncated archive fails naming it.
 *
 * Integrity: before streaming, the central directory at the end of the file is read (the zip's
 * own index: each entry's CRC-32 and sizes). An archive without one was cut short, wherever the
 * cut fell; each entry's decompressed bytes are checked against its CRC-32 and size; and an entry
 * the directory lists but the stream never reached is an error. fflate's streaming reader checks
 * none of these, and a local header of an entry written with a data descriptor carries no CRC.
 */
import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import CRC32 from 'crc-32';
import { Unzip, UnzipInflate, type UnzipFile } from 'fflate';
import { checkEntryPath } from './tar.ts';

/** What the central directory says of one entry. */
export interface ZipDirectoryEntry {
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;

function readAt(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  const got = readSync(fd, buffer, 0, length, position);
  return buffer.subarray(0, got);
}

/**
 * The central directory of the zip `file`, by entry name.
 * @throws Error naming the file when it has no end-of-central-directory record (cut short, or not a zip) or a damaged directory.
 */
export function readZipDirectory(file: string): Map<string, ZipDirectoryEntry> {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    // The end record is 22 bytes plus a comment of at most 65 535.
    const tailStart = Math.max(0, size - 22 - 0xffff);
    const tail = readAt(fd, tailStart, size - tailStart);
    let at = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD) {
        at = i;
        break;
      }
    }
    if (at < 0) throw new Error(`${file}: not a complete zip (no end-of-central-directory record: the file was cut short or is not a zip)`);
    let entries = tail.readUInt16LE(at + 10);
    let directorySize = tail.readUInt32LE(at + 12);
    let directoryOffset = tail.readUInt32LE(at + 16);
    if (directoryOffset === 0xffffffff || entries === 0xffff) {
      const locator = at - 20;
      if (locator < 0 || tail.readUInt32LE(locator) !== ZIP64_LOCATOR) throw new Error(`${file}: damaged zip (zip64 end record missing)`);
      const record = readAt(fd, Number(tail.readBigUInt64LE(locator + 8)), 56);
      if (record.length < 56 || record.readUInt32LE(0) !== ZIP64_EOCD) throw new Error(`${file}: damaged zip (zip64 end record unreadable)`);
      entries = Number(record.readBigUInt64LE(32));
      directorySize = Number(record.readBigUInt64LE(40));
      directoryOffset = Number(record.readBigUInt64LE(48));
    }
    const directory = readAt(fd, directoryOffset, directorySize);
    if (directory.length < directorySize) throw new Error(`${file}: damaged zip (the central directory runs past the end of the file)`);
    const out = new Map<string, ZipDirectoryEntry>();
    let p = 0;
    for (let k = 0; k < entries; k++) {
      if (p + 46 > directory.length || directory.readUInt32LE(p) !== CENTRAL) throw new Error(`${file}: damaged zip (central directory entry ${k + 1} of ${entries} unreadable)`);
      let compressedSize = directory.readUInt32LE(p + 20);
      let uncompressed = directory.readUInt32LE(p + 24);
      const nameLength = directory.readUInt16LE(p + 28);
      const extraLength = directory.readUInt16LE(p + 30);
      const commentLength = directory.readUInt16LE(p + 32);
      const name = directory.toString('utf8', p + 46, p + 46 + nameLength);
      // Zip64 sizes live in the extra field (id 1): the original size first, then the compressed.
      if (uncompressed === 0xffffffff || compressedSize === 0xffffffff) {
        for (let e = p + 46 + nameLength; e + 4 <= p + 46 + nameLength + extraLength; ) {
          const id = directory.readUInt16LE(e);
          const length = directory.readUInt16LE(e + 2);
          if (id === 1) {
            let q = e + 4;
            if (uncompressed === 0xffffffff) (uncompressed = Number(directory.readBigUInt64LE(q)), (q += 8));
            if (compressedSize === 0xffffffff) compressedSize = Number(directory.readBigUInt64LE(q));
          }
          e += 4 + length;
        }
      }
      out.set(name, { crc32: directory.readUInt32LE(p + 16), compressedSize, size: uncompressed });
      p += 46 + nameLength + extraLength + commentLength;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

export interface ZipEntry {
  readonly path: string;
  readonly bytes: Uint8Array;
}

/** The file entries of a zip file (directories skipped), each decompressed whole. */
export async function* zipEntries(file: string): AsyncGenerator<ZipEntry> {
  const directory = readZipDirectory(file);
  const seen = new Set<string>();
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
        const listed = directory.get(entry.name);
        if (!listed) return void (failure ??= new Error(`${file}: entry "${entry.name}" is not in the zip's central directory`));
        if (bytes.length !== listed.size) return void (failure ??= new Error(`${file}: entry "${entry.name}" is ${bytes.length} bytes, the zip's directory says ${listed.size}`));
        if (CRC32.buf(bytes) >>> 0 !== listed.crc32) return void (failure ??= new Error(`${file}: entry "${entry.name}" is damaged (CRC-32 mismatch)`));
        seen.add(entry.name);
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
    const missing = [...directory.keys()].filter((name) => !name.endsWith('/') && !seen.has(name));
    if (missing.length > 0) throw new Error(`${file}: ${missing.length} entries listed in the zip's directory were not found in it (first: "${missing[0]}")`);
  } finally {
    stream.destroy();
  }
}

/**
 * `.npy` arrays (NumPy's format, version 1–3) read by position without loading the whole array:
 * a cloud simulation or a geophysical field can be gigabytes, and a clip needs a few frames of it.
 *
 * Written by hand because the npm readers (npyjs and others) parse a whole in-memory buffer; the
 * format itself is a magic string, a little header dict and raw C- or Fortran-order data
 * (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export type NpyDtype = '<f4' | '<f8' | '|u1' | '<u2' | '<i2' | '<i4' | '<u4' | '|i1';

const ITEM_SIZE: Record<NpyDtype, number> = { '<f4': 4, '<f8': 8, '|u1': 1, '|i1': 1, '<u2': 2, '<i2': 2, '<i4': 4, '<u4': 4 };

export interface NpyHeader {
  readonly dtype: NpyDtype;
  readonly fortranOrder: boolean;
  readonly shape: readonly number[];
  /** Byte offset of the first value. */
  readonly dataOffset: number;
  readonly itemSize: number;
}

/** Parses the header of an `.npy` file held in `bytes` (at least its first header bytes). */
export function parseNpyHeader(bytes: Uint8Array, name = 'array'): NpyHeader {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw new Error(`${name}: not an .npy file (no \\x93NUMPY magic)`);
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [lengthBytes, headerLength] = major === 1 ? [2, view.getUint16(8, true)] : [4, view.getUint32(8, true)];
  const start = 8 + lengthBytes;
  if (bytes.length < start + headerLength) throw new Error(`${name}: .npy header truncated`);
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLength));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`${name}: unreadable .npy header ${JSON.stringify(text.trim())}`);
  if (!(descr in ITEM_SIZE)) throw new Error(`${name}: .npy dtype ${descr} is not supported (little-endian float32/64 and integers are)`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  return { dtype: descr as NpyDtype, fortranOrder: fortran === 'True', shape, dataOffset: start + headerLength, itemSize: ITEM_SIZE[descr as NpyDtype] };
}

/** Converts raw little-endian values of `dtype` into float64 numbers. */
export function npyValues(dtype: NpyDtype, bytes: Uint8Array): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / ITEM_SIZE[dtype];
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case '<f4': out[i] = view.getFloat32(4 * i, true); break;
      case '<f8': out[i] = view.getFloat64(8 * i, true); break;
      case '|u1': out[i] = view.getUint8(i); break;
      case '|i1': out[i] = view.getInt8(i); break;
      case '<u2': out[i] = view.getUint16(2 * i, true); break;
      case '<i2': out[i] = view.getInt16(2 * i, true); break;
      case '<i4': out[i] = view.getInt32(4 * i, true); break;
      case '<u4': out[i] = view.getUint32(4 * i, true); break;
    }
  }
  return out;
}

/**
 * A C-order `.npy` file on disk, read by ranges of its flat index. Opens the file for each read,
 * so nothing is left open between reads.
 */
export class NpyFile {
  readonly header: NpyHeader;

  constructor(readonly path: string) {
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.alloc(Math.min(fstatSync(fd).size, 65_536 + 12));
      readSync(fd, head, 0, head.length, 0);
      this.header = parseNpyHeader(head, path);
      const count = this.header.shape.reduce((a, b) => a * b, 1);
      const needed = this.header.dataOffset + count * this.header.itemSize;
      if (fstatSync(fd).size < needed) throw new Error(`${path}: .npy data truncated (${fstatSync(fd).size} bytes, header says ${needed})`);
    } finally {
      closeSync(fd);
    }
    if (this.header.fortranOrder) throw new Error(`${path}: Fortran-order .npy arrays are not supported for ranged reads; save it with numpy.ascontiguousarray`);
  }

  /** Values at flat C-order indices [start, start + ranges[i].length) for each range, as float64. */
  readRanges(ranges: ReadonlyArray<{ start: number; length: number }>): Float64Array[] {
    const fd = openSync(this.path, 'r');
    try {
      return ranges.map(({ start, length }) => {
        const bytes = Buffer.alloc(length * this.header.itemSize);
        readSync(fd, bytes, 0, bytes.length, this.header.dataOffset + start * this.header.itemSize);
        return npyValues(this.header.dtype, bytes);
      });
    } finally {
      closeSync(fd);
    }
  }
}

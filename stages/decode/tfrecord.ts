/**
 * TFRecord files and `tf.train.Example` records, read and written without TensorFlow.
 *
 * Framing of each record: uint64 little-endian length, uint32 masked CRC32C of those 8 bytes, the
 * data, uint32 masked CRC32C of the data; mask(c) = ((c >>> 15) | (c << 17)) + 0xa282ead8. The
 * reader is incremental (bytes arrive in chunks of any size, from a file, a tar entry or a socket)
 * and checks both CRCs, naming the file and byte offset of a damaged record. CRC32C comes from
 * the `crc-32` package, the protobuf decoding of Example from protobufjs.
 */
import CRC32C from 'crc-32/crc32c';
import Long from 'long';
import protobuf from 'protobufjs';

const MASK_DELTA = 0xa282ead8;

export function maskedCrc32c(bytes: Uint8Array): number {
  const c = CRC32C.buf(bytes) >>> 0;
  return ((((c >>> 15) | (c << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

/** One record framed for a TFRecord file. */
export function encodeRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + data.length);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

export class TFRecordError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    message: string,
  ) {
    super(`${file} at byte ${offset}: ${message}`);
    this.name = 'TFRecordError';
  }
}

/** One record of a TFRecord file: its bytes, or why they cannot be trusted. */
export interface TFRecord {
  /** Byte offset of the record's header in the file. */
  readonly offset: number;
  readonly data: Uint8Array;
  /** Set when the record's data fails its CRC: the record is damaged, the records after it are not. */
  readonly damaged?: TFRecordError;
}

/**
 * Splits a byte stream into records, checking both CRCs; `end()` refuses a truncated tail. A
 * record whose data fails its CRC comes out marked `damaged` and the next one is read: its length
 * passed its own CRC, so the framing holds. A length that fails its CRC loses the framing: one
 * `damaged` record marks the place, and the parser resynchronises on the next offset where a whole
 * record checks (length CRC and data CRC: a false match has odds of 2⁻⁶⁴), so the records after the
 * damage are read. The bytes in between count as that one damaged record.
 */
export class TFRecordParser {
  private buffer = new Uint8Array(0);
  /** Byte offset in the file of `buffer[0]`. */
  private offset = 0;
  /** Looking for the next whole valid record after a bad length CRC. */
  private resyncing = false;

  /**
   * @param file a name for errors.
   * @param maxRecordBytes while resynchronising, a length above this is not a record's (default 64 MiB).
   */
  constructor(
    readonly file: string,
    private readonly maxRecordBytes = 2 ** 26,
  ) {}

  /** The records completed by `chunk`, in order. */
  *push(chunk: Uint8Array): Generator<TFRecord> {
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer);
    joined.set(chunk, this.buffer.length);
    let at = 0;
    try {
      while (joined.length - at >= 12) {
        const view = new DataView(joined.buffer, joined.byteOffset + at, 12);
        const length = Number(view.getBigUint64(0, true));
        const lengthOk = view.getUint32(8, true) === maskedCrc32c(joined.subarray(at, at + 8));
        if (this.resyncing && (!lengthOk || length > this.maxRecordBytes)) {
          at += 1;
          continue;
        }
        if (!lengthOk) {
          // The framing is lost here: mark the place and look for the next whole record.
          const damaged = new TFRecordError(this.file, this.offset + at, 'bad length CRC (not a TFRecord file, or damaged); the rest of the entry is searched for the next whole record');
          this.resyncing = true;
          at += 1;
          yield { offset: this.offset + at - 1, data: new Uint8Array(0), damaged };
          continue;
        }
        if (joined.length - at < 16 + length) break;
        const data = joined.slice(at + 12, at + 12 + length);
        const crcOk = new DataView(joined.buffer, joined.byteOffset + at + 12 + length, 4).getUint32(0, true) === maskedCrc32c(data);
        if (this.resyncing) {
          // Only a record whose data checks too ends the search.
          if (!crcOk) {
            at += 1;
            continue;
          }
          this.resyncing = false;
        }
        const record: TFRecord = crcOk ? { offset: this.offset + at, data } : { offset: this.offset + at, data, damaged: new TFRecordError(this.file, this.offset + at, `bad data CRC in a record of ${length} bytes`) };
        at += 16 + length;
        yield record;
      }
    } finally {
      this.buffer = joined.slice(at);
      this.offset += at;
    }
  }

  /** Call at the end of the bytes: leftover bytes are a truncated record. */
  end(): void {
    // Bytes left while resynchronising are the rest of the damage already reported.
    if (this.resyncing) return;
    if (this.buffer.length > 0) throw new TFRecordError(this.file, this.offset, `truncated record (${this.buffer.length} bytes left)`);
  }
}

/** A feature of a `tf.train.Example`. */
export type Feature = { readonly bytes: Uint8Array[] } | { readonly floats: number[] } | { readonly ints: bigint[] };

const root = protobuf.parse(`
syntax = "proto3";
message BytesList { repeated bytes value = 1; }
message FloatList { repeated float value = 1 [packed = true]; }
message Int64List { repeated int64 value = 1 [packed = true]; }
message Feature { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
message Features { map<string, Feature> feature = 1; }
message Example { Features features = 1; }
`).root;
const ExampleType = root.lookupType('Example');

interface RawFeature {
  bytesList?: { value?: Uint8Array[] };
  floatList?: { value?: number[] };
  int64List?: { value?: Array<number | { low: number; high: number; unsigned: boolean }> };
}

/** Decodes a serialized Example into its features by name. */
export function decodeExample(data: Uint8Array): Map<string, Feature> {
  const message = ExampleType.decode(data) as unknown as { features?: { feature?: Record<string, RawFeature> } };
  const out = new Map<string, Feature>();
  for (const [name, f] of Object.entries(message.features?.feature ?? {})) {
    if (f.bytesList) out.set(name, { bytes: f.bytesList.value ?? [] });
    else if (f.floatList) out.set(name, { floats: f.floatList.value ?? [] });
    else if (f.int64List) {
      const ints = (f.int64List.value ?? []).map((v) => (typeof v === 'number' ? BigInt(v) : BigInt.asIntN(64, (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0))));
      out.set(name, { ints });
    }
  }
  return out;
}

/** Serializes features into an Example (for tests, fixtures and users' own files). */
export function encodeExample(features: ReadonlyMap<string, Feature>): Uint8Array {
  const feature: Record<string, RawFeature> = {};
  for (const [name, f] of features) {
    if ('bytes' in f) feature[name] = { bytesList: { value: f.bytes } };
    else if ('floats' in f) feature[name] = { floatList: { value: f.floats } };
    else feature[name] = { int64List: { value: f.ints.map((v) => Long.fromString(BigInt.asIntN(64, v).toString())) } };
  }
  return ExampleType.encode(ExampleType.fromObject({ features: { feature } })).finish();
}

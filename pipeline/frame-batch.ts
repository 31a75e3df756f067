/**
 * Frame batches: clips travelling between stages as Apache Arrow record batches, one row per clip.
 *
 * | column    | type                                   | meaning                                 |
 * |-----------|----------------------------------------|-----------------------------------------|
 * | `clip`    | Utf8                                   | clip id                                 |
 * | `frames`  | FixedSizeList<Uint8 or Float32>[T·H·W·C] | pixels, frame-major, channels last      |
 * | `mask`    | FixedSizeList<Uint8>[T·H·W]            | 1 = visible, 0 = occluded               |
 * | `seed`    | Uint64                                 | seed the clip's occlusion was drawn with |
 * | `process` | Utf8                                   | occlusion process name (`none` if clean)  |
 *
 * Shape (T, H, W, C), value type and value range travel in the schema metadata. All rows' pixels
 * are one contiguous buffer ({@link framesOf}), so a batch becomes a tensor without copying. The
 * same schema is used for Arrow IPC files and streams. Must not know about any dataset.
 */
import * as arrow from 'apache-arrow';
import { fixedData, listData, recordBatch, utf8Data } from './arrow-direct.ts';

export type PixelType = 'uint8' | 'float32';
export type Pixels = Uint8Array | Float32Array;

export interface ClipShape {
  readonly frames: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

/** What every clip of a batch has in common; stored in the schema metadata. */
export interface FrameBatchSpec {
  readonly shape: ClipShape;
  readonly pixelType: PixelType;
  /** Values run over [lo, hi]: [0, 255] for uint8 pixels, [-1, 1] inside the model. */
  readonly range: readonly [number, number];
}

/** One clip as stages see it. Decoded clips hold views into the batch's buffers (no copy). */
export interface Clip {
  readonly id: string;
  /** T·H·W·C values, frame-major, channels last. */
  readonly frames: Pixels;
  /** T·H·W values, 1 = visible; absent means fully visible. */
  readonly mask?: Uint8Array;
  readonly seed?: bigint;
  readonly process?: string;
}

const META = { shape: 'st-inpaint.shape', pixelType: 'st-inpaint.pixel-type', range: 'st-inpaint.range' } as const;

export function pixelsPerClip({ frames, height, width, channels }: ClipShape): number {
  return frames * height * width * channels;
}

export function maskPerClip({ frames, height, width }: ClipShape): number {
  return frames * height * width;
}

function checkSpec(spec: FrameBatchSpec): void {
  const { shape, pixelType, range } = spec;
  for (const [k, v] of Object.entries(shape)) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`frame batch: shape.${k} must be an integer ≥ 1, got ${String(v)}`);
  }
  if (pixelType !== 'uint8' && pixelType !== 'float32') throw new RangeError(`frame batch: pixelType must be uint8 or float32, got ${String(pixelType)}`);
  if (!(range[0] < range[1])) throw new RangeError(`frame batch: range must be [lo, hi] with lo < hi, got [${range.join(', ')}]`);
}

function pixelArrowType(pixelType: PixelType): arrow.Uint8 | arrow.Float32 {
  return pixelType === 'uint8' ? new arrow.Uint8() : new arrow.Float32();
}

export function frameBatchSchema(spec: FrameBatchSpec): arrow.Schema {
  // A stage passes the same spec object for every batch: it is checked and keyed once.
  const known = schemaOfSpec.get(spec);
  if (known) return known;
  checkSpec(spec);
  // Schemas are immutable: one per distinct spec is built and shared by every batch of that spec
  // (building one costs more than a small batch's remaining bookkeeping).
  const key = JSON.stringify([spec.shape, spec.pixelType, spec.range]);
  let schema = schemas.get(key);
  if (!schema) {
    if (schemas.size >= 64) schemas.clear();
    schemas.set(key, (schema = buildSchema(spec)));
    infoOfSchema.set(schema, { spec, at: findColumns(schema) });
  }
  schemaOfSpec.set(spec, schema);
  return schema;
}

const schemaOfSpec = new WeakMap<FrameBatchSpec, arrow.Schema>();

const schemas = new Map<string, arrow.Schema>();

/**
 * What is known of one frame-batch schema, found once: a schema is immutable and shared by every
 * batch of its spec (built here, or read from one IPC file or stream).
 */
interface SchemaInfo {
  readonly spec: FrameBatchSpec;
  /** Where each column sits among the fields (a file may order them differently). */
  readonly at: ColumnIndices;
  /** What encoding needs, built on the first encode (a schema read from a file may only ever be decoded). */
  parts?: SchemaParts;
}

const infoOfSchema = new WeakMap<arrow.Schema, SchemaInfo>();

/** A schema's info; a schema that is not a frame batch gets an error saying what is missing. */
function schemaInfo(schema: arrow.Schema): SchemaInfo {
  let info = infoOfSchema.get(schema);
  if (!info) infoOfSchema.set(schema, (info = { spec: parseSpec(schema), at: findColumns(schema) }));
  return info;
}

function buildSchema(spec: FrameBatchSpec): arrow.Schema {
  const { shape } = spec;
  const metadata = new Map([
    [META.shape, JSON.stringify([shape.frames, shape.height, shape.width, shape.channels])],
    [META.pixelType, spec.pixelType],
    [META.range, JSON.stringify(spec.range)],
  ]);
  return new arrow.Schema(
    [
      new arrow.Field('clip', new arrow.Utf8(), false),
      new arrow.Field('frames', new arrow.FixedSizeList(pixelsPerClip(shape), new arrow.Field('pixel', pixelArrowType(spec.pixelType), false)), false),
      new arrow.Field('mask', new arrow.FixedSizeList(maskPerClip(shape), new arrow.Field('visible', new arrow.Uint8(), false)), false),
      new arrow.Field('seed', new arrow.Uint64(), false),
      new arrow.Field('process', new arrow.Utf8(), false),
    ],
    metadata,
  );
}

/** Reads the spec back from a schema; a schema that is not a frame batch gets an error saying what is missing. */
export function frameBatchSpec(schema: arrow.Schema): FrameBatchSpec {
  return schemaInfo(schema).spec;
}

function parseSpec(schema: arrow.Schema): FrameBatchSpec {
  const get = (key: string): string => {
    const v = schema.metadata.get(key);
    if (v === undefined) throw new Error(`not an st-inpaint frame batch: schema metadata lacks "${key}"`);
    return v;
  };
  const [frames, height, width, channels] = JSON.parse(get(META.shape)) as number[];
  const spec: FrameBatchSpec = {
    shape: { frames: frames!, height: height!, width: width!, channels: channels! },
    pixelType: get(META.pixelType) as PixelType,
    range: JSON.parse(get(META.range)) as [number, number],
  };
  checkSpec(spec);
  return spec;
}

function uninitialised<A extends Uint8Array | Float32Array>(Kind: { new (buffer: ArrayBuffer, offset: number, length: number): A; BYTES_PER_ELEMENT: number }, length: number): A {
  const bytes = Buffer.allocUnsafeSlow(length * Kind.BYTES_PER_ELEMENT);
  return new Kind(bytes.buffer as ArrayBuffer, bytes.byteOffset, length);
}

interface BatchBuffers {
  readonly pixels: Pixels;
  readonly masks: Uint8Array;
  readonly seeds: BigUint64Array;
  /**
   * The frames, mask and seed columns over these buffers, kept for the next batch that reuses
   * them (rebuilt when that batch has another schema). A recycled batch's buffers are overwritten
   * anyway, so sharing the Data objects that point at them changes nothing a live batch could
   * see. It saves building them after each copy, when megabytes of pixels have just pushed
   * everything else out of the CPU's caches.
   */
  columns?: { readonly schema: arrow.Schema; readonly data: readonly [arrow.Data, arrow.Data, arrow.Data] };
}

/**
 * Reuses the pixel and mask buffers of frame batches once their consumer is done with them, so a
 * steady stream of batches touches the same few megabytes instead of fresh pages for every batch
 * (allocation and page faults cost about as much as the copy itself; `bench/pipeline.ts`).
 *
 * @example
 * const pool = new FrameBatchPool();
 * batch('batch-clips', 8, (clips) => encodeFrameBatch(spec, clips, pool), { recycle: (b) => pool.recycle(b) })
 */
export class FrameBatchPool {
  private readonly free = new Map<string, BatchBuffers[]>();
  private readonly owned = new WeakMap<arrow.RecordBatch, { key: string; buffers: BatchBuffers }>();

  /** @param maxFree buffers kept per batch size; more recycled than that are left to the GC. */
  constructor(private readonly maxFree = 8) {}

  /** @internal Buffers for `rows` clips: recycled ones when there are, else new uninitialised ones. */
  take(spec: FrameBatchSpec, rows: number): { key: string; buffers: BatchBuffers } {
    const key = `${spec.pixelType}:${rows}:${rows * pixelsPerClip(spec.shape)}:${rows * maskPerClip(spec.shape)}`;
    const buffers = this.free.get(key)?.pop() ?? allocate(spec, rows);
    return { key, buffers };
  }

  /** @internal Notes that `batch` was built on buffers from `take`. */
  adopt(batch: arrow.RecordBatch, taken: { key: string; buffers: BatchBuffers }): void {
    this.owned.set(batch, taken);
  }

  /**
   * Returns a batch's buffers to the pool. The batch and every view taken from it must no longer
   * be in use. A batch this pool did not make, or one recycled already, is ignored.
   */
  recycle(batch: arrow.RecordBatch): void {
    const taken = this.owned.get(batch);
    if (!taken) return;
    this.owned.delete(batch);
    let list = this.free.get(taken.key);
    if (!list) this.free.set(taken.key, (list = []));
    if (list.length < this.maxFree) list.push(taken.buffers);
  }
}

function allocate(spec: FrameBatchSpec, rows: number): BatchBuffers {
  const n = rows * pixelsPerClip(spec.shape);
  // Uninitialised memory: every pixel is written by encodeFrameBatch (each clip's length is
  // checked), so zeroing it first would be a wasted pass over the largest buffer of the pipeline.
  return {
    pixels: spec.pixelType === 'uint8' ? uninitialised(Uint8Array, n) : uninitialised(Float32Array, n),
    masks: uninitialised(Uint8Array, rows * maskPerClip(spec.shape)),
    seeds: new BigUint64Array(rows),
  };
}

/**
 * Copies clips into one record batch (the only copy on the way to a tensor).
 * @param pool where to take the batch's buffers from (and later give them back); default: new ones.
 * @throws RangeError naming the clip when a clip's pixel or mask count or pixel type does not fit the spec.
 */
export function encodeFrameBatch(spec: FrameBatchSpec, clips: readonly Clip[], pool?: FrameBatchPool): arrow.RecordBatch {
  const schema = frameBatchSchema(spec);
  const rows = clips.length;
  const n = pixelsPerClip(spec.shape);
  const m = maskPerClip(spec.shape);
  const taken = pool?.take(spec, rows);
  const buffers = taken?.buffers ?? allocate(spec, rows);
  const { pixels, masks, seeds } = buffers;
  const expectedType = spec.pixelType === 'uint8' ? Uint8Array : Float32Array;
  clips.forEach((clip, i) => {
    if (!(clip.frames instanceof expectedType)) throw new RangeError(`clip "${clip.id}": pixels are ${clip.frames.constructor.name}, the batch holds ${spec.pixelType}`);
    if (clip.frames.length !== n) throw new RangeError(`clip "${clip.id}": ${clip.frames.length} pixel values, expected ${n} (T·H·W·C)`);
    (pixels as Pixels).set(clip.frames as never, i * n);
    if (clip.mask) {
      if (clip.mask.length !== m) throw new RangeError(`clip "${clip.id}": ${clip.mask.length} mask values, expected ${m} (T·H·W)`);
      masks.set(clip.mask, i * m);
    } else {
      masks.fill(1, i * m, (i + 1) * m);
    }
    seeds[i] = clip.seed ?? 0n;
  });
  const parts = partsOf(schema);
  if (buffers.columns?.schema !== schema) {
    // The pooled buffers' columns are built once and kept with them.
    const { framesType, maskType, seedType } = parts;
    buffers.columns = { schema, data: [listData(framesType, rows, pixels), listData(maskType, rows, masks), fixedData(seedType, rows, seeds)] };
  }
  const [framesData, maskData, seedData] = buffers.columns.data;
  const batch = recordBatch(schema, parts.struct, rows, [utf8Data(parts.idType, clips.map((c) => c.id)), framesData, maskData, seedData, processColumn(parts, clips)]);
  if (taken) pool!.adopt(batch, taken);
  return batch;
}

/** What encoding needs of a frame-batch schema: its row type and its columns' types. */
interface SchemaParts {
  readonly struct: arrow.Struct;
  readonly idType: arrow.Utf8;
  readonly framesType: arrow.FixedSizeList;
  readonly maskType: arrow.FixedSizeList;
  readonly seedType: arrow.Uint64;
  readonly processType: arrow.Utf8;
  /** Process columns whose rows all hold one name, by row count and name (see processColumn). */
  readonly uniformProcess: Map<string, arrow.Data<arrow.Utf8>>;
}

/** A schema's parts, built once per schema (types are immutable: one set serves every batch). */
function partsOf(schema: arrow.Schema): SchemaParts {
  const info = schemaInfo(schema);
  if (!info.parts) {
    const type = <T extends arrow.DataType>(index: number): T => schema.fields[index]!.type as T;
    info.parts = {
      struct: new arrow.Struct(schema.fields),
      idType: type(info.at.clip),
      framesType: type(info.at.frames),
      maskType: type(info.at.mask),
      seedType: type(info.at.seed),
      processType: type(info.at.process),
      uniformProcess: new Map(),
    };
  }
  return info.parts;
}

/**
 * The process column. Every clip of a batch usually went through the same occlusion process (or
 * none), and such a column is the same whatever the batch: it is built once per row count and
 * name and shared (Data is immutable).
 */
function processColumn(parts: SchemaParts, clips: readonly Clip[]): arrow.Data<arrow.Utf8> {
  const name = clips[0]?.process ?? 'none';
  if (!clips.every((c) => (c.process ?? 'none') === name)) return utf8Data(parts.processType, clips.map((c) => c.process ?? 'none'));
  const key = `${clips.length}:${name}`;
  let column = parts.uniformProcess.get(key);
  if (!column) {
    if (parts.uniformProcess.size >= 64) parts.uniformProcess.clear();
    parts.uniformProcess.set(key, (column = utf8Data(parts.processType, clips.map(() => name))));
  }
  return column;
}

/** Where each column of a frame batch sits among its schema's fields. */
interface ColumnIndices {
  readonly clip: number;
  readonly frames: number;
  readonly mask: number;
  readonly seed: number;
  readonly process: number;
}

function findColumns(schema: arrow.Schema): ColumnIndices {
  const at = (name: string): number => {
    const i = schema.fields.findIndex((f) => f.name === name);
    if (i < 0) throw new Error(`not an st-inpaint frame batch: no column "${name}"`);
    return i;
  };
  return { clip: at('clip'), frames: at('frames'), mask: at('mask'), seed: at('seed'), process: at('process') };
}

/**
 * One column's data, straight from the batch's struct (`RecordBatch.getChild` wraps it in a new
 * Vector on every call). Arrow slices a column's data along with the batch: fixed-width values
 * and Utf8 offsets are cut to the batch's rows, and a FixedSizeList's child values start at its
 * first row.
 */
function column<T extends arrow.DataType>(batch: arrow.RecordBatch, index: number): arrow.Data<T> {
  return batch.data.children[index] as arrow.Data<T>;
}

/**
 * A Utf8 column's values. The used bytes are decoded in one native call; when that gives one
 * character per byte, every row is a slice of the result (each byte decoded to one UTF-16 unit
 * means no multi-byte sequence and no byte grouped with another into a replacement character, so
 * the rows' byte ranges are their character ranges); otherwise each row is decoded on its own.
 */
function strings(data: arrow.Data<arrow.Utf8>): string[] {
  const { valueOffsets, values, length } = data;
  const first = valueOffsets[0]!;
  const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const text = bytes.toString('utf8', first, valueOffsets[length]!);
  const ascii = text.length === valueOffsets[length]! - first;
  const out = new Array<string>(length);
  for (let i = 0; i < length; i++) {
    out[i] = ascii ? text.slice(valueOffsets[i]! - first, valueOffsets[i + 1]! - first) : bytes.toString('utf8', valueOffsets[i]!, valueOffsets[i + 1]!);
  }
  return out;
}

/** The values buffer of a FixedSizeList column, as one view over all rows (no copy). */
function listValues<V extends Pixels>(batch: arrow.RecordBatch, index: number, perRow: number): V {
  // Arrow slices a list's child values along with it (the offsets it keeps only index validity
  // bitmaps), so the rows of this batch always start at the child's first value.
  return (column<arrow.FixedSizeList>(batch, index).children[0]!.values as V).subarray(0, batch.numRows * perRow) as V;
}

/** All pixels of the batch, B·T·H·W·C values in one view over the batch's buffer. */
export function framesOf(batch: arrow.RecordBatch, spec?: FrameBatchSpec): Pixels {
  const info = schemaInfo(batch.schema);
  return listValues<Pixels>(batch, info.at.frames, pixelsPerClip((spec ?? info.spec).shape));
}

/** All masks of the batch, B·T·H·W values in one view over the batch's buffer. */
export function masksOf(batch: arrow.RecordBatch, spec?: FrameBatchSpec): Uint8Array {
  const info = schemaInfo(batch.schema);
  return listValues<Uint8Array>(batch, info.at.mask, maskPerClip((spec ?? info.spec).shape));
}

/** The batch's clips as views into its buffers (no pixel is copied). */
export function decodeFrameBatch(batch: arrow.RecordBatch): { spec: FrameBatchSpec; clips: Clip[] } {
  const { spec, at } = schemaInfo(batch.schema);
  const n = pixelsPerClip(spec.shape);
  const m = maskPerClip(spec.shape);
  const pixels = listValues<Pixels>(batch, at.frames, n);
  const masks = listValues<Uint8Array>(batch, at.mask, m);
  const ids = strings(column<arrow.Utf8>(batch, at.clip));
  const processes = strings(column<arrow.Utf8>(batch, at.process));
  const seeds = column<arrow.Uint64>(batch, at.seed).values;
  const clips: Clip[] = [];
  for (let i = 0; i < batch.numRows; i++) {
    clips.push({
      id: ids[i]!,
      frames: pixels.subarray(i * n, (i + 1) * n),
      mask: masks.subarray(i * m, (i + 1) * m),
      seed: seeds[i]!,
      process: processes[i]!,
    });
  }
  return { spec, clips };
}

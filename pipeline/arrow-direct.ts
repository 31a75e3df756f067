/**
 * The one place where frame batches are assembled past Apache Arrow's public constructors, and why.
 *
 * Every function here has a public route (`makeData`, `new RecordBatch`) and a direct one, which
 * builds the same `Data` objects with `new Data(…)` and assembles a record batch without
 * `RecordBatch`'s constructor. The public constructors re-dispatch through a visitor, re-wrap every
 * buffer, re-check column lengths and copy the schema (cloning every field and merging metadata
 * maps) per batch, and a frame batch is small in objects but frequent. `npm run bench -- pipeline`
 * in four alternating pairs: the pipeline at 0.67 – 0.76 of the plain copy loop on the public route
 * and 0.75 – 0.83 on the direct one (target ≥ 0.8), the framework's own cost 3.1 µs per clip
 * against 1.9. With Arrow's builders (`vectorFromArray`) for the Utf8 columns as well, 0.53 – 0.58.
 *
 * The direct route is taken only when this Arrow's `RecordBatch` keeps exactly the state probed
 * below (schema, data, metadata); otherwise, or with `ST_INPAINT_ARROW=public` (to measure), the
 * public route is. tests/pipeline/arrow-direct.test.ts checks that both give the same batches,
 * byte for byte in Arrow IPC.
 */
import * as arrow from 'apache-arrow';

/** The validity buffer of a column without nulls (never written, so one is shared). */
const NO_NULLS = new Uint8Array(0);

const PUBLIC = process.env['ST_INPAINT_ARROW'] === 'public';

const RECORD_BATCH_STATE: boolean = (() => {
  const probe = new arrow.RecordBatch(new arrow.Schema([new arrow.Field('x', new arrow.Uint8(), false)]), arrow.makeData({ type: new arrow.Struct([new arrow.Field('x', new arrow.Uint8(), false)]), length: 0, nullCount: 0, children: [arrow.makeData({ type: new arrow.Uint8(), length: 0, nullCount: 0 })] }));
  return Object.keys(probe).sort().join(',') === '_metadata,data,schema' && probe.metadata instanceof Map;
})();

/** Which route this process takes. */
export const ARROW_ROUTE: 'direct' | 'public' = PUBLIC || !RECORD_BATCH_STATE ? 'public' : 'direct';
const DIRECT = ARROW_ROUTE === 'direct';

/** A non-null column of fixed-width values (`Uint8`, `Float32`, `Uint64`…). */
export function fixedData<T extends arrow.DataType>(type: T, length: number, values: T['TArray']): arrow.Data<T> {
  return DIRECT ? new arrow.Data(type, 0, length, 0, [undefined, values, NO_NULLS]) : (arrow.makeData({ type, length, nullCount: 0, data: values } as never) as unknown as arrow.Data<T>);
}

/** A non-null FixedSizeList column over one values buffer. */
export function listData<T extends arrow.FixedSizeList>(type: T, length: number, values: Uint8Array | Float32Array): arrow.Data<T> {
  const child = fixedData(type.valueType, length * type.listSize, values as never);
  return DIRECT ? new arrow.Data(type, 0, length, 0, [undefined, undefined, NO_NULLS], [child]) : (arrow.makeData({ type, length, nullCount: 0, child } as never) as unknown as arrow.Data<T>);
}

/**
 * A non-null Utf8 column: the strings are joined and encoded in one native call; when that gives
 * one byte per character (ASCII, the usual clip id), the offsets follow from the strings' lengths,
 * otherwise each string's length in bytes is asked for.
 */
export function utf8Data(type: arrow.Utf8, strings: readonly string[]): arrow.Data<arrow.Utf8> {
  const offsets = new Int32Array(strings.length + 1);
  let joined = '';
  for (const s of strings) joined += s;
  const values = Buffer.from(joined, 'utf8');
  const ascii = values.length === joined.length;
  let at = 0;
  for (let i = 0; i < strings.length; i++) {
    at += ascii ? strings[i]!.length : Buffer.byteLength(strings[i]!, 'utf8');
    offsets[i + 1] = at;
  }
  return DIRECT ? new arrow.Data(type, 0, strings.length, 0, [offsets, values, NO_NULLS]) : arrow.makeData({ type, length: strings.length, nullCount: 0, valueOffsets: offsets, data: values });
}

/** A record batch of `schema` over non-null columns that all have `length` rows; `struct` is the schema's row type. */
export function recordBatch(schema: arrow.Schema, struct: arrow.Struct, length: number, children: readonly arrow.Data[]): arrow.RecordBatch {
  if (!DIRECT) return new arrow.RecordBatch(schema, arrow.makeData({ type: struct, length, nullCount: 0, children: children as arrow.Data[] }));
  const data = new arrow.Data(struct, 0, length, 0, [undefined, undefined, NO_NULLS], children as arrow.Data[]);
  const batch = Object.create(arrow.RecordBatch.prototype) as arrow.RecordBatch;
  return Object.assign(batch, { schema, data, _metadata: new Map<string, string>() });
}

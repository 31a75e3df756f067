/**
 * NetCDF-4 (HDF5 underneath) read through h5wasm: variables by name, hyperslabs read without
 * loading the rest of the file (chunked and deflate-compressed variables included), CF packing
 * undone (`scale_factor`, `add_offset`), missing values (`_FillValue`, `missing_value`, NaN) as
 * NaN, and CF time coordinates (`<unit> since <date>`) as dates.
 *
 * Must not know about tensors or any dataset.
 */
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import type H5 from 'h5wasm/node';
import { UsageError } from '../../pipeline/errors.ts';

type H5Module = typeof H5;
type H5File = InstanceType<H5Module['File']>;
type H5Dataset = InstanceType<H5Module['Dataset']>;

/** h5wasm (4 MB of JavaScript and wasm) is loaded on first use, not by every command that imports this file. */
let loading: Promise<H5Module> | undefined;
const h5wasm = (): Promise<H5Module> =>
  (loading ??= import('h5wasm/node').then(async ({ default: module }) => {
    await module.ready;
    return module;
  }));

const UNIT_MS: Readonly<Record<string, number>> = { second: 1000, seconds: 1000, s: 1000, minute: 60_000, minutes: 60_000, hour: 3_600_000, hours: 3_600_000, h: 3_600_000, day: 86_400_000, days: 86_400_000, d: 86_400_000 };

/** `hours since 1950-01-01 00:00:00` → the offsets as dates (UTC). */
export function cfTimes(values: ArrayLike<number>, units: string, where: string): Date[] {
  const m = /^\s*(\w+)\s+since\s+(\d{1,4}-\d{1,2}-\d{1,2})(?:[ T](\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?\s*(Z|UTC|[+-]\d{1,2}(?::?\d{2})?)?\s*$/i.exec(units);
  const scale = m ? UNIT_MS[m[1]!.toLowerCase()] : undefined;
  if (!m || scale === undefined) throw new UsageError(`${where}: time units "${units}" are not "<seconds|minutes|hours|days> since <date>"`);
  const [y, mo, d] = m[2]!.split('-').map(Number) as [number, number, number];
  const [hh = 0, mm = 0, ss = 0] = (m[3] ?? '0:00').split(':').map(Number);
  const origin = Date.UTC(y, mo - 1, d, hh, mm, ss);
  return Array.from(values, (v) => new Date(origin + v * scale));
}

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** HDF5's signature sits at 0, 512, 1024, 2048, … bytes; NetCDF-3 starts with "CDF". */
function checkSignature(path: string): void {
  const head = Buffer.alloc(4096 + 8);
  const fd = openSync(path, 'r');
  let length: number;
  try {
    length = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (head.subarray(0, 3).toString('latin1') === 'CDF') throw new UsageError(`${path}: a NetCDF-3 (classic) file; st-inpaint reads NetCDF-4 (convert it: nccopy -k nc4 IN OUT)`);
  for (let at = 0; at + 8 <= length; at = at === 0 ? 512 : at * 2) if (head.subarray(at, at + 8).equals(HDF5_SIGNATURE)) return;
  throw new UsageError(`${path}: not a NetCDF-4 / HDF5 file (no HDF5 signature)`);
}

export class NetcdfFile {
  private constructor(
    readonly path: string,
    private readonly file: H5File,
    private readonly h5: H5Module,
  ) {}

  /** @throws UsageError naming the file when it is missing or not HDF5 / NetCDF-4. */
  static async open(path: string): Promise<NetcdfFile> {
    if (!existsSync(path)) throw new UsageError(`${path}: no such file`);
    checkSignature(path);
    const h5 = await h5wasm();
    let file: H5File;
    try {
      file = new h5.File(path, 'r');
    } catch (err) {
      throw new UsageError(`${path}: not a NetCDF-4 / HDF5 file (${err instanceof Error ? err.message : String(err)})`);
    }
    return new NetcdfFile(path, file, h5);
  }

  /** The names of the file's top-level variables. */
  get variables(): string[] {
    return this.file.keys();
  }

  private variable(name: string): H5Dataset {
    const v = this.file.get(name);
    if (!(v instanceof this.h5.Dataset)) throw new UsageError(`${this.path}: no variable "${name}" (variables: ${this.variables.join(', ')})`);
    return v;
  }

  shape(name: string): number[] {
    return this.variable(name).shape ?? [];
  }

  /** A string or number attribute of a variable, if it has it. */
  attribute(name: string, attribute: string): string | number | undefined {
    const attrs = this.variable(name).attrs as Record<string, { value: unknown }>;
    const value = attrs[attribute]?.value;
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'string' || typeof value === 'number') return value;
    if (typeof value === 'bigint') return Number(value);
    if (ArrayBuffer.isView(value) && (value as unknown as ArrayLike<number>).length > 0) return Number((value as unknown as ArrayLike<number | bigint>)[0]);
    if (Array.isArray(value) && value.length > 0) return typeof value[0] === 'string' ? value[0] : Number(value[0]);
    return undefined;
  }

  /**
   * Values of a variable over `[start, end)` ranges per dimension, every `step`-th index when a
   * range has one (all of it when omitted), unpacked to physical values, missing values as NaN.
   */
  read(name: string, ranges?: ReadonlyArray<readonly [number, number, number?]>): Float32Array {
    const v = this.variable(name);
    const raw = (ranges ? v.slice(ranges.map(([a, b, step]) => (step && step > 1 ? [a, b, step] : [a, b]))) : v.value) as ArrayLike<number | bigint> | null;
    if (!raw || typeof raw !== 'object' || !('length' in raw)) throw new UsageError(`${this.path}: variable "${name}" is not numeric`);
    const scale = Number(this.attribute(name, 'scale_factor') ?? 1);
    const offset = Number(this.attribute(name, 'add_offset') ?? 0);
    const fill = this.attribute(name, '_FillValue');
    const missing = this.attribute(name, 'missing_value');
    const out = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) {
      const r = Number(raw[i]!);
      out[i] = r === fill || r === missing || Number.isNaN(r) ? NaN : r * scale + offset;
    }
    return out;
  }

  /** A CF time coordinate as dates. */
  times(name = 'time'): Date[] {
    const units = this.attribute(name, 'units');
    if (typeof units !== 'string') throw new UsageError(`${this.path}: variable "${name}" has no "units" attribute`);
    const raw = this.variable(name).value as ArrayLike<number | bigint>;
    return cfTimes(Array.from(raw, Number), units, `${this.path}: ${name}`);
  }

  close(): void {
    this.file.close();
  }
}

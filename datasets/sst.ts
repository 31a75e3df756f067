/**
 * Sea-surface temperature (method.md §6): hourly `thetao` of the NEMO model from Copernicus Marine,
 * NetCDF-4 files the user downloaded (a file, or a folder of `.nc` files), cut into sequences of
 * T = 24 frames, cropped to 64×64 grid cells, one depth level, each sequence normalised as
 * (x − mean)/(3·std) over its sea cells (clamped to [−1, 1]), land cells set to 0.
 *
 * As the authors' code: a sequence's frames are every `interval`-th hour (6: 24 frames cover six
 * days), and a new sequence starts every `stride` hours (24: one a day, overlapping). Splits by
 * time: sequences starting before `test-from` (2018) are train, of which the last `val-sequences`
 * are validation (66: the official 300 train sequences of 2018's 366); the first `test-sequences`
 * from `test-from` on are test (60). Each file is read a sequence at a time (strided hyperslabs),
 * never whole.
 *
 * The request for the paper's data is in the README (product, variable, depth, region, period).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { defer, finalize } from 'rxjs';
import { UsageError } from '../pipeline/errors.ts';
import type { FrameBatchSpec } from '../pipeline/frame-batch.ts';
import { resolveOptions, type ParamValues } from '../pipeline/graph.ts';
import { rangeParts } from './parts.ts';
import { map } from '../pipeline/operators/map.ts';
import { mapAsync } from '../pipeline/operators/map-async.ts';
import { source, type SourceOptions } from '../pipeline/operators/source.ts';
import { named, type Stream } from '../pipeline/stage.ts';
import { NetcdfFile } from '../stages/decode/netcdf.ts';
import type { DatasetClip, Split } from './synthetic.ts';

export const sstOptions = {
  split: { type: 'string', default: 'all', choices: ['all', 'train', 'val', 'test'], describe: 'which split' },
  frames: { type: 'number', default: 24, integer: true, min: 1, max: 10_000, describe: 'frames per sequence (T)' },
  interval: { type: 'number', default: 6, integer: true, min: 1, max: 10_000, describe: "time steps (hours) between a sequence's frames (the authors' code: 6)" },
  stride: { type: 'number', default: 24, integer: true, min: 1, max: 100_000, describe: 'time steps (hours) between the starts of consecutive sequences (24: one a day)' },
  'test-sequences': { type: 'number', default: 60, integer: true, min: 0, describe: 'the first N sequences from test-from on are the test split (0: all of them)' },
  size: { type: 'number', default: 64, integer: true, min: 4, max: 4096, describe: 'crop height and width, grid cells' },
  variable: { type: 'string', default: 'thetao', describe: 'the temperature variable, dimensions (time, depth, lat, lon) or (time, lat, lon)' },
  depth: { type: 'number', default: 0, integer: true, min: 0, describe: 'depth level index (0: 0.494 m in the paper\'s product)' },
  'test-from': { type: 'string', default: '2019-01-01', describe: 'sequences starting on or after this date (UTC) are the test split' },
  'val-sequences': { type: 'number', default: 66, integer: true, min: 0, describe: 'the last N sequences before test-from are the validation split' },
  'crop-y': { type: 'number', default: -1, integer: true, min: -1, describe: 'first grid row of the crop (-1: centred)' },
  'crop-x': { type: 'number', default: -1, integer: true, min: -1, describe: 'first grid column of the crop (-1: centred)' },
  'sequences-from': { type: 'number', default: 0, integer: true, min: 0, describe: "first sequence read, by its place among the split's sequences in time order (a part, as a worker takes it)" },
  'sequences-until': { type: 'number', default: 0, integer: true, min: 0, describe: "sequence the read stops before, by its place among the split's sequences (0: the end)" },
} as const;

type SstOptions = ParamValues<typeof sstOptions>;

/** The sequence's normalisation: its mean and 3·std over the finite cells (0 for fewer than two). */
export function sequenceScale(values: Float32Array): { mean: number; scale: number } {
  let n = 0;
  let sum = 0;
  for (const v of values) if (Number.isFinite(v)) (n++, (sum += v));
  const mean = n ? sum / n : 0;
  let squares = 0;
  for (const v of values) if (Number.isFinite(v)) squares += (v - mean) ** 2;
  return { mean, scale: n > 1 ? 3 * Math.sqrt(squares / n) : 0 };
}

/** (x − mean)/(3·std) over the finite cells, clamped to [−1, 1]; NaN (land) → 0. */
export function normaliseSequence(values: Float32Array): Float32Array {
  const { mean, scale } = sequenceScale(values);
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    out[i] = !Number.isFinite(v) || scale === 0 ? 0 : Math.max(-1, Math.min(1, (v - mean) / scale));
  }
  return out;
}

interface Sequence {
  readonly file: string;
  readonly start: number;
  readonly time: Date;
}

/** A sequence with its split and clip id. */
interface PlannedSequence extends Sequence {
  readonly id: string;
  readonly split: Split;
}

/**
 * The split's sequences in time order, with their split and id: every file's sequences first
 * (times only), so that the split can count from the end of the train years.
 * @param skip an unreadable file's fate under --on-error skip (absent: its error is thrown).
 */
async function planSequences(files: readonly string[], location: string, o: SstOptions, span: number, testFrom: number, skip?: (element: { file: string }, cause: unknown) => void): Promise<PlannedSequence[]> {
  const T = o.frames;
  const sequences: Sequence[] = [];
  for (const file of files) {
    let nc: NetcdfFile | undefined;
    try {
      nc = await NetcdfFile.open(file);
      const times = nc.times('time');
      for (let start = 0; start + span <= times.length; start += o.stride) sequences.push({ file, start, time: times[start]! });
    } catch (err) {
      // An unreadable file: under --on-error skip its sequences are dropped and counted.
      if (!skip) throw err;
      skip({ file }, err);
    } finally {
      nc?.close();
    }
  }
  sequences.sort((a, b) => a.time.getTime() - b.time.getTime() || a.file.localeCompare(b.file));
  const before = sequences.filter((s) => s.time.getTime() < testFrom).length;
  const testCount = o['test-sequences'] === 0 ? Infinity : o['test-sequences'];
  if (o.split === 'train' && before <= o['val-sequences']) {
    throw new UsageError(`dataset "sst" at ${location}: ${before} sequences of ${T} frames start before ${o['test-from']}, and the last ${o['val-sequences']} are validation: none is left to train on (set --dataset-option val-sequences=N)`);
  }
  // Past the test sequences: in no split.
  const splitOf = (s: Sequence, rank: number): Split | undefined =>
    s.time.getTime() >= testFrom ? (rank - before < testCount ? 'test' : undefined) : rank >= before - o['val-sequences'] ? 'val' : 'train';
  const planned: PlannedSequence[] = [];
  for (const [rank, s] of sequences.entries()) {
    const split = splitOf(s, rank);
    if (split && (o.split === 'all' || split === o.split)) planned.push({ ...s, split, id: `${basename(s.file)}@${s.time.toISOString().slice(0, 13)}` });
  }
  return planned;
}

/** The files a source names (a .nc file, or a folder of them), its options checked. */
function sstSource(location: string, given: Readonly<Record<string, unknown>>): { o: SstOptions; files: string[]; testFrom: number; span: number } {
  const o = resolveOptions('dataset "sst"', sstOptions, given);
  if (!existsSync(location)) throw new UsageError(`--source ${location}: no such file or folder`);
  const files = statSync(location).isDirectory() ? readdirSync(location).filter((f) => /\.nc4?$/i.test(f)).sort().map((f) => join(location, f)) : [location];
  if (files.length === 0) throw new UsageError(`--source ${location}: no .nc files in it`);
  const testFrom = Date.parse(o['test-from']);
  if (Number.isNaN(testFrom)) throw new UsageError(`dataset "sst": --test-from "${o['test-from']}" is not a date`);
  return { o, files, testFrom, span: 1 + o.interval * (o.frames - 1) };
}

/** The read cut into parts of about `size` sequences (ranges of the split's sequences in time order), for workers. */
export async function sstParts(location: string, given: Readonly<Record<string, unknown>>, size: number): Promise<Array<Record<string, number>>> {
  const { o, files, testFrom, span } = sstSource(location, given);
  // An unreadable file is the workers' to report (or skip), as a local read would.
  const count = (await planSequences(files, location, o, span, testFrom, () => {})).length;
  return rangeParts(['sequences-from', 'sequences-until'], o['sequences-from'], Math.min(count, o['sequences-until'] || Infinity), size);
}

export function sstClips(location: string, given: Readonly<Record<string, unknown>>, stage: SourceOptions = {}): { spec: FrameBatchSpec; clips: Stream<DatasetClip> } {
  // `span`: time steps from a sequence's first frame to just past its last.
  const { o, files, testFrom, span } = sstSource(location, given);
  const T = o.frames;
  const S = o.size;
  const spec: FrameBatchSpec = { shape: { frames: T, height: S, width: S, channels: 1 }, pixelType: 'float32', range: [-1, 1] };

  const policy = { onError: stage.onError };
  // The chain: every file's sequences, planned and split → each sequence's values read as a crop → normalised.
  const planned = source('sst-sequences', async function* ({ skip }): AsyncGenerator<PlannedSequence> {
    const until = o['sequences-until'] || Infinity;
    for (const [place, s] of (await planSequences(files, location, o, span, testFrom, skip)).entries()) {
      if (place >= until) return;
      if (place >= o['sequences-from']) yield s;
    }
  }, stage);
  const read = named<PlannedSequence, PlannedSequence & { values: Float32Array }>('read-sequence', (upstream) =>
    defer(() => {
      // The file being read stays open from one sequence to the next (they come in time order).
      let open: NetcdfFile | undefined;
      return upstream.pipe(
        mapAsync(
          'read-sequence',
          async (s: PlannedSequence) => {
            if (open?.path !== s.file) {
              open?.close();
              open = undefined;
              open = await NetcdfFile.open(s.file);
            }
            return { ...s, values: readCrop(open, s) };
          },
          { ...policy, describe: (s) => ({ clip: s.id, file: s.file }) },
        ),
        finalize(() => open?.close()),
      );
    }),
  );
  // Each clip carries its 3·std, so that errors can be reported in °C (as the authors' code: x·3·std + mean).
  const normalise = map('normalise', ({ id, split, values }: PlannedSequence & { values: Float32Array }): DatasetClip => ({ id, split, frames: normaliseSequence(values), physical: { unit: '°C', perUnit: sequenceScale(values).scale } }), policy);

  /** The sequence's values at the crop (T · S · S floats). */
  function readCrop(nc: NetcdfFile, s: PlannedSequence): Float32Array {
    const shape = nc.shape(o.variable);
    if (shape.length !== 3 && shape.length !== 4) throw new UsageError(`${s.file}: "${o.variable}" has ${shape.length} dimensions; expected (time, [depth,] lat, lon)`);
    const [H, W] = shape.slice(-2) as [number, number];
    if (H < S || W < S) throw new UsageError(`${s.file}: the grid is ${H}×${W}, smaller than the ${S}×${S} crop`);
    const y0 = o['crop-y'] >= 0 ? o['crop-y'] : Math.floor((H - S) / 2);
    const x0 = o['crop-x'] >= 0 ? o['crop-x'] : Math.floor((W - S) / 2);
    if (y0 + S > H || x0 + S > W) throw new UsageError(`${s.file}: a ${S}×${S} crop at row ${y0}, column ${x0} leaves the ${H}×${W} grid`);
    if (shape.length === 4 && o.depth >= shape[1]!) throw new UsageError(`${s.file}: depth index ${o.depth} out of ${shape[1]} levels`);
    const ranges: Array<readonly [number, number, number?]> = [[s.start, s.start + span, o.interval], ...(shape.length === 4 ? [[o.depth, o.depth + 1] as const] : []), [y0, y0 + S], [x0, x0 + S]];
    return nc.read(o.variable, ranges);
  }
  const clips = planned.pipe(read, normalise);
  return { spec, clips };
}

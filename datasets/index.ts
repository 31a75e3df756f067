/**
 * The datasets by name: where their clips come from and how they are shaped. Each dataset file
 * under `datasets/` describes one; commands (`peek`, `export`) and graphs find them here.
 */
import { UsageError } from '../pipeline/errors.ts';
import type { FrameBatchSpec } from '../pipeline/frame-batch.ts';
import { resolveOptions, type ParamSpecs } from '../pipeline/graph.ts';
import { readShards } from '../stages/sinks/shards.ts';
import type { Stream } from '../pipeline/stage.ts';
import type { SourceOptions } from '../pipeline/operators/source.ts';
import { bairClips, bairOptions, bairParts } from './bair.ts';
import { kthClips, kthOptions, kthParts } from './kth.ts';
import { sstClips, sstOptions, sstParts } from './sst.ts';
import { faceforensicsClips, faceforensicsOptions, faceforensicsParts } from './faceforensics.ts';
import { rangeParts } from './parts.ts';
import { checkSyntheticOptions, syntheticOptions, syntheticSource, syntheticSpec, type DatasetClip } from './synthetic.ts';

export type { DatasetClip, Split } from './synthetic.ts';

export interface Dataset {
  readonly name: string;
  readonly description: string;
  /** Options given as `--dataset-option key=value` on the command line. */
  readonly options: ParamSpecs;
  /** Channels of its clips, where fixed (1 gray, 3 colour). */
  readonly channels?: number;
  /** Whether the dataset reads a source (an embedded dataset has none). */
  readonly needsSource: boolean;
  /** Where the data is published, taken when `--source` is not given (downloaded into the cache). */
  readonly officialSource?: string;
  /** Where and how to get the data when it has no public URL, for the error without `--source`. */
  readonly obtain?: string;
  /**
   * Checks the options and opens the clips, preprocessed, with their splits. `stage.onError`
   * `skip` drops a clip that cannot be read (logged and counted); `fail` (default) stops there.
   */
  open(given: Readonly<Record<string, unknown>>, source?: string, stage?: SourceOptions): { spec: FrameBatchSpec; clips: Stream<DatasetClip> };
  /**
   * The clips cut into independent parts of about `size` clips, in stream order, each as options
   * added to `open`'s: what workers take (distributed export). Absent: parts are clip positions,
   * each worker reading the stream up to its part.
   */
  parts?(given: Readonly<Record<string, unknown>>, source: string | undefined, size: number): Promise<ReadonlyArray<Readonly<Record<string, unknown>>>>;
}

const synthetic: Dataset = {
  name: 'synthetic',
  description: 'embedded: moving, rotating textured shapes over a drifting background (no download)',
  options: syntheticOptions,
  needsSource: false,
  open(given) {
    const o = checkSyntheticOptions(given);
    return { spec: syntheticSpec(o), clips: syntheticSource(o) };
  },
  async parts(given, _source, size) {
    const o = checkSyntheticOptions(given);
    return rangeParts(['from', 'until'], o.from, o.until > 0 ? Math.min(o.until, o.clips) : o.clips, size);
  },
};

const shards: Dataset = {
  name: 'shards',
  description: 'a folder written by "st-inpaint export" (--source DIR): clean or observed clips with their masks',
  options: {
    set: { type: 'string', default: 'clean', describe: 'which set: clean, or the occlusion the export used' },
    split: { type: 'string', default: 'all', choices: ['all', 'train', 'val', 'test'], describe: 'which split' },
  },
  needsSource: true,
  open(given, source) {
    const o = resolveOptions('dataset "shards"', this.options, given);
    const { spec, clips } = readShards(source!, o.set as string, o.split as string);
    return { spec, clips: clips as Stream<DatasetClip> };
  },
};

/** What a dataset read from a user-given source (URL, file or folder) provides: its clips, and its parts for workers. */
interface SourceReader {
  readonly clips: (source: string, given: Readonly<Record<string, unknown>>, stage?: SourceOptions) => { spec: FrameBatchSpec; clips: Stream<DatasetClip> };
  readonly parts: (source: string, given: Readonly<Record<string, unknown>>, size: number) => Promise<ReadonlyArray<Readonly<Record<string, unknown>>>>;
}

/** A dataset read from a user-given source (URL, file or folder) by its own clips and parts functions. */
function fromSource(
  name: string,
  description: string,
  options: ParamSpecs,
  channels: number,
  reader: SourceReader,
  where: { readonly officialSource: string } | { readonly obtain: string },
): Dataset {
  return { name, description, options, channels, needsSource: true, ...where, open: (given, source, stage) => reader.clips(source!, given, stage), parts: (given, source, size) => reader.parts(source!, given, size) };
}

/**
 * The source a dataset reads: the one given, else its official URL.
 * @throws UsageError saying where and how to get the data when it has no public URL.
 */
export function sourceOf(dataset: Dataset, given: string | undefined): string | undefined {
  if (!dataset.needsSource || given) return given || undefined;
  if (dataset.officialSource) return dataset.officialSource;
  throw new UsageError(`dataset "${dataset.name}" needs --source: ${dataset.obtain ?? 'a URL or a path'}`);
}

const bair = fromSource('bair', 'BAIR robot pushing: the softmotion30_44k tar (URL or file) streamed without extraction, TFRecords of 30 frames of 64×64×3', bairOptions, 3, { clips: bairClips, parts: bairParts }, {
  officialSource: 'http://rail.eecs.berkeley.edu/datasets/bair_robot_pushing_dataset_v0.tar',
});

const kth = fromSource('kth', 'KTH actions: the six per-action zips (a folder, or one zip) cut by 00sequences.txt, gray 64×64, 35 frames', kthOptions, 1, { clips: kthClips, parts: kthParts }, {
  officialSource: 'http://www.csc.kth.se/cvap/actions/',
});

const sst = fromSource('sst', 'sea-surface temperature: Copernicus Marine NetCDF-4 files (a file or folder), 24-hour sequences, 64×64 crops, normalised per sequence', sstOptions, 1, { clips: sstClips, parts: sstParts }, {
  obtain: 'Copernicus Marine NetCDF-4 files of thetao at 0.494 m, hourly (a copernicusmarine subset request; the regions and dates are in docs/datasets.md), as a file or folder',
});

const faceforensics = fromSource('faceforensics', "FaceForensics++ originals: the user's folder of videos, face crops (detector weights in an npm package) to 64×64×3, 35 frames", faceforensicsOptions, 3, { clips: faceforensicsClips, parts: faceforensicsParts }, {
  obtain: "the folder original_sequences/youtube/c23/videos that the owners' download script fetches after their access form (https://github.com/ondyari/FaceForensics); it cannot be redistributed",
});

export const DATASETS: ReadonlyMap<string, Dataset> = new Map([synthetic, shards, bair, kth, sst, faceforensics].map((d) => [d.name, d]));

export function findDataset(name: string): Dataset {
  const dataset = DATASETS.get(name);
  if (dataset) return dataset;
  throw new UsageError(`unknown dataset "${name}" (known: ${[...DATASETS.keys()].join(', ')})`);
}

/**
 * Commands that look at data: `peek` (the first clips of a dataset, as JSON lines or a table),
 * `preview-occlusion` (a PNG strip of the synthetic set under a process) and `export` (Arrow shards).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { firstValueFrom, lastValueFrom, take, tap } from 'rxjs';
import { findDataset, sourceOf, type DatasetClip } from '../datasets/index.ts';
import { FeatureModel, folderFeatures, type FeatureKind } from '../stages/eval/features.ts';
import { frechetOfSets, readFidStats, type FeatureSet } from '../stages/eval/frechet.ts';
import { checkSyntheticOptions, syntheticClip, syntheticOptions, syntheticSpec } from '../datasets/synthetic.ts';
import { UsageError } from '../pipeline/errors.ts';
import type { Clip, Pixels } from '../pipeline/frame-batch.ts';
import type { Stream } from '../pipeline/stage.ts';
import { defineGraph, parseOptionPairs } from '../pipeline/graph.ts';
import { map } from '../pipeline/operators/map.ts';
import { runGraph } from '../pipeline/runner.ts';
import { MANIFEST, readManifest, writeShards, type ExportRow } from '../stages/sinks/shards.ts';
import { source } from '../pipeline/operators/source.ts';
import { unwrap } from '../pipeline/operators/unwrap.ts';
import { RunningSummary, Telemetry, metered } from '../pipeline/telemetry.ts';
import { findOcclusion, occludedFraction, occlusionOptions, type OcclusionChoice } from '../stages/occlusion/index.ts';
import { occlude, type ObservedClip } from '../stages/occlusion/occlude.ts';
import { maskRow, writeStrip } from '../stages/sinks/png-strip.ts';

export interface Io {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

/** `--occlusion NAME` with its `--occlusion-option k=v` list, checked. */
export function occlusionFromArgs(name: string | undefined, pairs: readonly string[] = []): OcclusionChoice | undefined {
  if (!name) {
    if (pairs.length > 0) throw new UsageError('--occlusion-option needs --occlusion NAME');
    return undefined;
  }
  const process = findOcclusion(name);
  return { process, options: occlusionOptions(process, parseOptionPairs(`occlusion "${name}"`, process.options, pairs)) };
}

/** Mean and population std of pixel values scaled to [0, 1]. */
export function pixelStats(clip: Clip, range: readonly [number, number]): { mean: number; std: number } {
  const [lo, hi] = range;
  const running = new RunningSummary();
  for (let i = 0; i < clip.frames.length; i++) running.add((clip.frames[i]! - lo) / (hi - lo));
  return running.summary;
}

/** What `peek` and `export` share: a dataset opened with its options, observed under an optional occlusion. */
export interface DatasetArgs {
  readonly dataset: string;
  readonly source?: string;
  readonly seed: number;
  readonly datasetOptions?: readonly string[];
  /** A clip that cannot be read: stop (default) or drop it, logged and counted. */
  readonly onError?: 'fail' | 'skip';
  readonly occlusion?: string;
  readonly occlusionOptions?: readonly string[];
}

/** @param part options of one part of the dataset (a worker's share, see `Dataset.parts`). */
export function openObserved(args: DatasetArgs, part: Readonly<Record<string, unknown>> = {}) {
  const dataset = findDataset(args.dataset);
  const source = sourceOf(dataset, args.source);
  const given = { ...parseOptionPairs(`dataset "${dataset.name}"`, dataset.options, args.datasetOptions ?? []), ...part };
  const occlusion = occlusionFromArgs(args.occlusion, args.occlusionOptions);
  const { spec, clips } = dataset.open(given, source, { onError: args.onError ?? 'fail' });
  const observed: Stream<DatasetClip | (ObservedClip & { split?: string })> = occlusion ? clips.pipe(occlude(occlusion, { seed: args.seed, spec })) : clips;
  return { dataset, given, occlusion, spec, observed };
}

export interface PeekArgs extends DatasetArgs {
  readonly clips: number;
  readonly json: boolean;
}

export async function peek(args: PeekArgs, io: Io): Promise<void> {
  if (!Number.isInteger(args.clips) || args.clips < 1) throw new UsageError(`--clips must be an integer ≥ 1, got ${args.clips}`);
  const { spec, observed } = openObserved(args);
  const { frames, height, width, channels } = spec.shape;
  if (!args.json) io.out(['id', 'split', 'T×H×W×C', 'mean', 'std', 'occluded'].join('\t'));
  // Clips dropped under --on-error skip are named on stderr as they happen, and counted at the end.
  const telemetry = new Telemetry();
  let skipped = 0;
  const events = telemetry.events$.subscribe((e) => {
    if (e.kind !== 'skipped') return;
    skipped += e.count ?? 1;
    io.err(`skipped: ${e.message}`);
  });
  try {
    await lastValueFrom(
      metered(telemetry, observed).pipe(
        unwrap(),
        take(args.clips),
        tap((clip) => {
          const { mean, std } = pixelStats(clip, spec.range);
          const split = (clip as Clip & { split?: string }).split ?? 'all';
          const occluded = clip.mask ? occludedFraction(clip.mask) : undefined;
          if (args.json) {
            io.out(JSON.stringify({ id: clip.id, split, frames, height, width, channels, mean, std, ...(occluded !== undefined && { occluded }) }));
          } else {
            io.out([clip.id, split, `${frames}×${height}×${width}×${channels}`, mean.toFixed(4), std.toFixed(4), ...(occluded !== undefined ? [occluded.toFixed(4)] : [])].join('\t'));
          }
        }),
      ),
      { defaultValue: undefined },
    );
  } finally {
    events.unsubscribe();
  }
  if (skipped > 0) io.err(`${skipped} clip${skipped === 1 ? '' : 's'} skipped (--on-error skip)`);
}

export interface PreviewArgs {
  readonly occlusion: string;
  readonly out: string;
  readonly seed: number;
  readonly clip: number;
  readonly datasetOptions?: readonly string[];
  readonly occlusionOptions?: readonly string[];
}

/** Draws clean / mask / observed rows of one synthetic clip under a process. */
export async function previewOcclusion(args: PreviewArgs, io: Io): Promise<void> {
  if (!args.out.toLowerCase().endsWith('.png')) throw new UsageError(`--out must name a .png file, got ${args.out}`);
  const o = checkSyntheticOptions({ size: 64, frames: 24, channels: 3, ...parseOptionPairs('dataset "synthetic"', syntheticOptions, args.datasetOptions ?? []) });
  const choice = occlusionFromArgs(args.occlusion, args.occlusionOptions)!;
  const spec = syntheticSpec(o);
  const clip = syntheticClip(o, args.clip);
  const observed = await firstValueFrom(source('clip', () => [clip]).pipe(occlude(choice, { seed: args.seed, spec }), unwrap()));
  const mask = observed.mask!;
  await writeStrip(args.out, [{ pixels: clip.frames, range: spec.range }, maskRow(mask), { pixels: observed.frames, range: spec.range }], spec.shape);
  io.out(`${args.out}: clip ${clip.id} under ${choice.process.name} (${(100 * occludedFraction(mask)).toFixed(1)} % hidden); rows: clean, mask (white = hidden), observed`);
}

export interface ExportArgs extends DatasetArgs {
  readonly out: string;
  readonly shardClips: number;
  readonly runs: string;
}

/** A clip as an export writes it: its clean pixels, and its observed version under the occlusion. */
export function exportRow(occlusion: OcclusionChoice | undefined): (clip: Clip & { split?: string; truth?: Pixels }) => ExportRow {
  return (clip) => {
    const split = clip.split ?? 'all';
    if (!occlusion || !clip.truth) return { split, sets: { clean: clip } };
    const { truth, ...seen } = clip;
    return { split, sets: { clean: { id: clip.id, frames: truth }, [occlusion.process.name]: seen } };
  };
}

/** The provenance an export's manifest records (the same for a local and a distributed export). */
export function exportProvenance(args: DatasetArgs, dataset: { name: string }, given: Readonly<Record<string, unknown>>, occlusion: OcclusionChoice | undefined): Record<string, unknown> {
  return { dataset: dataset.name, source: args.source ?? null, datasetOptions: given, occlusion: occlusion ? { name: occlusion.process.name, options: occlusion.options } : null, seed: args.seed };
}

/** Writes a dataset's preprocessed clips (and their observed versions) as Arrow shards, with progress. */
export async function exportDataset(args: ExportArgs, io: Io): Promise<void> {
  if (!Number.isInteger(args.shardClips) || args.shardClips < 1) throw new UsageError(`--shard-clips must be an integer ≥ 1, got ${args.shardClips}`);
  if (existsSync(join(args.out, MANIFEST))) throw new UsageError(`--out ${args.out} already holds an export (${MANIFEST}); choose another folder or remove it`);
  const { dataset, given, occlusion, spec, observed } = openObserved(args);
  const provenance = exportProvenance(args, dataset, given, occlusion);
  const graph = defineGraph({
    name: 'export',
    description: `export ${dataset.name} to ${args.out}`,
    params: {},
    build: () => {
      const rows = observed.pipe(map('rows', exportRow(occlusion)));
      return rows.pipe(writeShards(args.out, { spec, clipsPerShard: args.shardClips, provenance }));
    },
  });
  const result = await runGraph(graph, {}, { runsDir: args.runs, log: io.err });
  const manifest = readManifest(args.out);
  const counts = Object.entries(manifest.splits).map(([k, v]) => `${v} ${k}`).join(', ');
  io.out(`${args.out}: ${manifest.shards.length} shard files in sets ${manifest.sets.join(', ')} (${counts}) in ${(result.elapsedMs / 1000).toFixed(1)} s`);
}

export interface DistanceArgs {
  readonly a: string;
  readonly b: string;
  readonly model?: string;
  readonly json: boolean;
  /** Frames per video clip (FVD). */
  readonly frames?: number;
}

/**
 * `fid` and `fvd`: each side is a `.npz` of statistics or a folder whose features the model
 * computes. Two folders go through the exact sample route when that is cheaper than two d × d
 * eigen-decompositions (fewer vectors than dimensions), else through their moments.
 */
export async function frechetCommand(kind: FeatureKind, args: DistanceArgs, io: Io): Promise<void> {
  const metric = kind === 'inception' ? 'fid' : 'fvd';
  let model: FeatureModel | undefined;
  const side = async (p: string): Promise<FeatureSet> => {
    if (p.endsWith('.npz')) {
      if (!existsSync(p)) throw new UsageError(`${metric}: no file "${p}"`);
      return { gaussian: readFidStats(p) };
    }
    if (!existsSync(p)) throw new UsageError(`${metric}: no file or folder "${p}"`);
    if (!args.model) throw new UsageError(`${metric}: "${p}" is a folder; its features need --model (a converted ${kind === 'inception' ? 'Inception-v3' : 'I3D'} graph model, see the README)`);
    model ??= await FeatureModel.load(args.model, kind);
    let last = performance.now();
    const samples = await folderFeatures(model, p, {
      frames: args.frames,
      progress: (n) => {
        if (performance.now() - last < 10_000) return;
        last = performance.now();
        io.err(`${p}: ${n} ${kind === 'inception' ? 'frames' : 'clips'}`);
      },
    });
    io.err(`${p}: ${samples.length / model.dimension} ${kind === 'inception' ? 'frames' : 'clips'}`);
    return { samples };
  };
  try {
    const a = await side(args.a);
    const b = await side(args.b);
    const d = model?.dimension ?? ('gaussian' in a ? a.gaussian.mu.length : 0);
    const distance = frechetOfSets(a, b, d);
    io.out(args.json ? JSON.stringify({ [metric]: distance }) : `${metric.toUpperCase()} ${distance.toFixed(4)}`);
  } finally {
    model?.dispose();
  }
}

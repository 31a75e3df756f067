/**
 * Exported datasets: preprocessed clips (clean, and observed under an occlusion with their masks)
 * as Arrow IPC files, one folder per set and one file series per split, plus a manifest written
 * last. This replaces the "preprocess into raw / resized / occluded folders" step of earlier
 * implementations: a graph reads such a folder back as its source (`readShards`).
 *
 *   DIR/manifest.json
 *   DIR/clean/train-00000.arrow, DIR/clean/val-00000.arrow, …
 *   DIR/raindrops/train-00000.arrow, …   (rows aligned with clean/)
 *
 * Every file is written under a temporary name and renamed, and the manifest comes last, so a
 * folder without a manifest is an interrupted export and nothing in it is half-written.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RecordBatchReader, Table, tableToIPC } from 'apache-arrow';
import { Observable, concat, defer, filter, ignoreElements } from 'rxjs';
import { UsageError } from '../../pipeline/errors.ts';
import { decodeFrameBatch, encodeFrameBatch, type Clip, type FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { writeFileAtomic } from '../../pipeline/files.ts';
import { expand } from '../../pipeline/operators/expand.ts';
import { mapAsync } from '../../pipeline/operators/map-async.ts';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import type { Leased, Stream } from '../../pipeline/stage.ts';

export const MANIFEST = 'manifest.json';

/** One clip of an export: its split, and its versions by set name (`clean`, the process name). */
export interface ExportRow {
  readonly split: string;
  readonly sets: Readonly<Record<string, Clip>>;
}

export interface ShardFile {
  readonly set: string;
  readonly split: string;
  readonly file: string;
  readonly clips: number;
}

export interface Manifest {
  readonly format: 'st-inpaint-shards/1';
  readonly spec: FrameBatchSpec;
  readonly sets: readonly string[];
  readonly shards: readonly ShardFile[];
  /** Clips per split. */
  readonly splits: Readonly<Record<string, number>>;
  /** Where the clips came from: dataset, options, occlusion, seed. */
  readonly provenance: Readonly<Record<string, unknown>>;
}

/**
 * The sink of an export: groups rows by set and split, writes a file every `clipsPerShard` clips
 * and the manifest at the end. Emits each shard written (for telemetry and the run's records).
 */
export function writeShards(
  dir: string,
  options: { spec: FrameBatchSpec; clipsPerShard: number; provenance: Record<string, unknown> },
): (rows: Observable<Leased<ExportRow>>) => Observable<ShardFile> {
  return (rows) =>
    defer(() => {
      const pending = new Map<string, { set: string; split: string; clips: Clip[]; next: number }>();
      const shards: ShardFile[] = [];
      const splits: Record<string, number> = {};
      const sets = new Set<string>();

      const write = async (group: { set: string; split: string; clips: Clip[]; next: number }): Promise<ShardFile> => {
        const file = join(group.set, `${group.split}-${String(group.next).padStart(5, '0')}.arrow`);
        const batch = encodeFrameBatch(options.spec, group.clips);
        await writeFileAtomic(join(dir, file), tableToIPC(new Table([batch]), 'file'));
        const shard = { set: group.set, split: group.split, file, clips: group.clips.length };
        shards.push(shard);
        group.clips = [];
        group.next += 1;
        return shard;
      };

      const absorb = mapAsync(
        'write-shards',
        async (row: ExportRow): Promise<ShardFile | undefined> => {
          splits[row.split] = (splits[row.split] ?? 0) + 1;
          let written: ShardFile | undefined;
          for (const [set, clip] of Object.entries(row.sets)) {
            sets.add(set);
            const key = `${set}/${row.split}`;
            let group = pending.get(key);
            if (!group) pending.set(key, (group = { set, split: row.split, clips: [], next: 0 }));
            group.clips.push(clip);
            if (group.clips.length >= options.clipsPerShard) written = await write(group);
          }
          return written;
        },
        { concurrency: 1, describe: (row: ExportRow) => ({ clip: Object.values(row.sets)[0]?.id }) },
      );

      const finish = defer(async () => {
        for (const group of pending.values()) if (group.clips.length > 0) await write(group);
        const manifest: Manifest = { format: 'st-inpaint-shards/1', spec: options.spec, sets: [...sets], shards, splits, provenance: options.provenance };
        await writeFileAtomic(join(dir, MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
      }).pipe(ignoreElements());

      const written = rows.pipe(
        absorb,
        unwrap(),
        filter((shard): shard is ShardFile => shard !== undefined),
      );
      return concat(written, finish);
    });
}

/** Reads and checks the manifest of an exported folder. */
export function readManifest(dir: string): Manifest {
  const path = join(dir, MANIFEST);
  if (!existsSync(path)) {
    throw new UsageError(existsSync(dir) ? `${dir}: no ${MANIFEST} (not an export, or an interrupted one)` : `${dir} does not exist`);
  }
  const manifest = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  if (manifest.format !== 'st-inpaint-shards/1') throw new UsageError(`${path}: unknown format ${JSON.stringify(manifest.format)}`);
  return manifest;
}

/**
 * The clips of one set of an exported folder, as a source.
 * @param set `clean` or the occlusion process the export used.
 * @param split `train`, `val`, `test`, or `all`.
 */
export function readShards(dir: string, set = 'clean', split = 'all'): { spec: FrameBatchSpec; clips: Stream<Clip & { split: string }> } {
  const manifest = readManifest(dir);
  if (!manifest.sets.includes(set)) throw new UsageError(`${dir}: no set "${set}" (it has ${manifest.sets.join(', ')})`);
  const files = manifest.shards.filter((s) => s.set === set && (split === 'all' || s.split === split));
  const shardClips = expand('read-shards', async function* (shard: ShardFile) {
    const reader = await RecordBatchReader.from(readFileSync(join(dir, shard.file)));
    for (const batch of reader) for (const clip of decodeFrameBatch(batch).clips) yield { ...clip, split: shard.split };
  }, { describe: (shard) => ({ file: join(dir, shard.file) }) });
  return { spec: manifest.spec, clips: source('shards', () => files).pipe(shardClips) };
}

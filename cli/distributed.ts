/**
 * Graphs spread over worker processes through NATS JetStream (pipeline/nats.ts).
 *
 * `export … --nats URL`: the coordinator cuts the dataset into parts (the dataset's own parts, see
 * `Dataset.parts`, or else runs of clip positions), publishes one work item per part, and writes
 * the shards from the parts' results in part order, through the same sink as a local export: the
 * same shards and manifest, byte for byte. A worker runs a part with the same stage code as a
 * local export (open, occlude with the run's seed, rows), stores the result, announces it, and
 * only then acks the item: a worker killed mid-part loses nothing (its item goes to another worker
 * after the ack wait) and duplicates nothing (the result is stored under the part's name, its
 * notice dropped by the server's duplicate window, and the coordinator takes each part once). A coordinator killed and restarted with `--resume` re-reads
 * its job's notices from the start.
 *
 * `apply … --nats URL`: one item per video. `run … --nats URL --distribute STAGE`: the dataset's
 * chain on the workers (graphs/lib/distribute.ts).
 *
 * `worker --nats URL`: takes items of any kind from any number of jobs, `--concurrency` at a time.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import type { JsMsg } from '@nats-io/jetstream';
import { UsageError, oneLine } from '../pipeline/errors.ts';
import { decodeFrameBatch, encodeFrameBatch, type Clip, type FrameBatchSpec } from '../pipeline/frame-batch.ts';
import { defineGraph } from '../pipeline/graph.ts';
import { BUCKET, DONE_STREAM, JobNotices, WORKERS, WORK_STREAM, doneSubject, earlierNotices, openNats, removeJob, workSubject, type Nats, type NatsOptions } from '../pipeline/nats.ts';
import { inpaintVideo, resolveCheckpoint, type ApplyOptions, type ApplySummary } from '../stages/apply/inpaint-video.ts';
import { findDataset, sourceOf } from '../datasets/index.ts';
import { reportClipsFailure, runClipsItem, type ClipsItem } from '../graphs/lib/distribute.ts';
import { pull } from '../pipeline/operators/pull.ts';
import { source } from '../pipeline/operators/source.ts';
import { runGraph } from '../pipeline/runner.ts';
import { MANIFEST, readManifest, writeShards, type ExportRow } from '../stages/sinks/shards.ts';
import { exportProvenance, exportRow, openObserved, type DatasetArgs, type ExportArgs, type Io } from './commands.ts';

/** One part of an export, as a work item. */
export interface ExportItem {
  readonly kind: 'export';
  readonly job: string;
  /** The part's place in the export's order. */
  readonly k: number;
  readonly args: DatasetArgs;
  /** The coordinator session that published the item: message ids are unique per session (see {@link distributedExport}). */
  readonly session: string;
  /** The dataset's own part (options added to the dataset's), or clip positions [skip, skip + take). */
  readonly part: { readonly options: Readonly<Record<string, unknown>> } | { readonly skip: number; readonly take: number };
}

/** What a worker announces when a part is done (its result is in the object store under `<job>/<k>`). */
interface Notice {
  readonly k: number;
  readonly clips: number;
  readonly worker: string;
  /** Set instead of a result when the part failed on every try. */
  readonly error?: string;
}

const objectName = (job: string, k: number): string => `${job}/${k}`;

/** A part's rows as bytes: a JSON header (each row's split and sets) and one Arrow IPC stream per set. */
export function encodeRows(spec: FrameBatchSpec, rows: readonly ExportRow[]): Uint8Array {
  const sets: string[] = [];
  for (const row of rows) for (const set of Object.keys(row.sets)) if (!sets.includes(set)) sets.push(set);
  const bodies = sets.map((set) => tableToIPC(new Table([encodeFrameBatch(spec, rows.flatMap((r) => (r.sets[set] ? [r.sets[set]!] : [])))]), 'stream'));
  const header = Buffer.from(JSON.stringify({ rows: rows.map((r) => ({ split: r.split, sets: Object.keys(r.sets) })), sets, lengths: bodies.map((b) => b.byteLength) }));
  const out = Buffer.alloc(4 + header.byteLength + bodies.reduce((a, b) => a + b.byteLength, 0));
  out.writeUInt32LE(header.byteLength, 0);
  header.copy(out, 4);
  let at = 4 + header.byteLength;
  for (const b of bodies) (out.set(b, at), (at += b.byteLength));
  return out;
}

/** The rows back from {@link encodeRows}, in their order. */
export function decodeRows(bytes: Uint8Array): ExportRow[] {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = buffer.readUInt32LE(0);
  const header = JSON.parse(buffer.toString('utf8', 4, 4 + length)) as { rows: Array<{ split: string; sets: string[] }>; sets: string[]; lengths: number[] };
  let at = 4 + length;
  const clipsOf = new Map<string, Clip[]>();
  header.sets.forEach((set, i) => {
    const batches = tableFromIPC(buffer.subarray(at, (at += header.lengths[i]!))).batches;
    clipsOf.set(set, batches.flatMap((b) => decodeFrameBatch(b).clips));
  });
  const next = new Map(header.sets.map((s) => [s, 0]));
  return header.rows.map((r) => ({
    split: r.split,
    sets: Object.fromEntries(r.sets.map((set) => {
      const i = next.get(set)!;
      next.set(set, i + 1);
      return [set, clipsOf.get(set)![i]!];
    })),
  }));
}

/** Runs one export part: the local export's stages on the part, its rows encoded. */
export async function runExportItem(item: ExportItem): Promise<{ bytes: Uint8Array; clips: number }> {
  const { occlusion, spec, observed } = openObserved(item.args, 'options' in item.part ? item.part.options : {});
  const toRow = exportRow(occlusion);
  const rows: ExportRow[] = [];
  const { skip, take } = 'skip' in item.part ? item.part : { skip: 0, take: Infinity };
  let position = 0;
  for await (const clip of pull(observed)) {
    if (position++ < skip) continue;
    rows.push(toRow(clip));
    if (rows.length >= take) break;
  }
  return { bytes: encodeRows(spec, rows), clips: rows.length };
}

export interface DistributedExportArgs extends ExportArgs {
  readonly nats: NatsOptions;
  /** Clips per work item (parts by position, or the dataset's parts of about that size). */
  readonly partClips: number;
  /** Continue a job whose coordinator stopped (its parts' notices are in NATS). */
  readonly resume: boolean;
}

/** `export … --nats URL`: the coordinator. */
export async function distributedExport(args: DistributedExportArgs, io: Io): Promise<void> {
  if (!Number.isInteger(args.shardClips) || args.shardClips < 1) throw new UsageError(`--shard-clips must be an integer ≥ 1, got ${args.shardClips}`);
  if (!Number.isInteger(args.partClips) || args.partClips < 1) throw new UsageError(`--part-clips must be an integer ≥ 1, got ${args.partClips}`);
  if (existsSync(join(args.out, MANIFEST))) throw new UsageError(`--out ${args.out} already holds an export (${MANIFEST}); choose another folder or remove it`);
  const { dataset, given, occlusion, spec } = openObserved(args);
  const provenance = exportProvenance(args, dataset, given, occlusion);
  const datasetArgs: DatasetArgs = { dataset: args.dataset, ...(args.source && { source: args.source }), seed: args.seed, datasetOptions: args.datasetOptions ?? [], onError: args.onError ?? 'fail', ...(args.occlusion && { occlusion: args.occlusion, occlusionOptions: args.occlusionOptions ?? [] }) };
  // The job is named by what it computes: the same export resumes the same job.
  const job = createHash('sha256').update(JSON.stringify({ provenance, onError: datasetArgs.onError, partClips: args.partClips })).digest('hex').slice(0, 16);
  const fixed = await dataset.parts?.(given, sourceOf(dataset, args.source), args.partClips);
  const nats = await openNats(args.nats, `st-inpaint export ${job}`);
  let stopNotices = (): void => {};
  try {
    const earlier = await earlierNotices(nats, job, args.resume, 'parts of this export');
    if (earlier > 0) io.err(`resuming job ${job}: ${earlier} parts already done`);
    // Message ids carry this session, so the server's duplicate window drops a redelivered item's
    // second notice, but never the items or notices of a later run of the same export (a resumed
    // one republishes every part; the coordinator takes the first notice of each).
    const session = randomUUID();
    const item = (k: number): ExportItem => ({ kind: 'export', job, session, k, args: datasetArgs, part: fixed ? { options: fixed[k]! } : { skip: k * args.partClips, take: args.partClips } });
    const publish = (k: number) => nats.js.publish(workSubject(job), JSON.stringify(item(k)), { msgID: `${session}.${k}` });

    // Every notice of the job, from the first, by part.
    const opened = await JobNotices.open<Notice>(nats, job, (notice) => String(notice.k));
    stopNotices = opened.stop;
    const notices = opened.notices;

    const total = fixed?.length ?? Infinity;
    io.err(`job ${job}: ${Number.isFinite(total) ? `${total} parts` : 'parts'} of ${args.partClips} clips on the workers of ${args.nats.url}`);
    const graph = defineGraph({
      name: 'export',
      description: `export ${dataset.name} to ${args.out} on the workers of ${args.nats.url}`,
      params: {},
      build: () =>
        source('parts', async function* () {
          // Parts by position have no known end: a few are queued ahead, and a short part is the last.
          const ahead = fixed ? total : 8;
          let published = 0;
          for (let k = 0; k < total; k++) {
            while (published < Math.min(total, k + ahead)) await publish(published++);
            const notice = await notices.wait(String(k));
            if (notice.error) throw new Error(`part ${k} of ${dataset.name} failed on ${notice.worker}: ${notice.error}`);
            const blob = await nats.store.getBlob(objectName(job, k));
            if (!blob) throw new Error(`part ${k}: its result is missing from the NATS object store (bucket "st-inpaint", ${objectName(job, k)})`);
            yield* decodeRows(blob);
            if (!fixed && notice.clips < args.partClips) break;
          }
        }).pipe(writeShards(args.out, { spec, clipsPerShard: args.shardClips, provenance })),
    });
    const result = await runGraph(graph, {}, { runsDir: args.runs, log: io.err });
    stopNotices();
    await removeJob(nats, job);
    const manifest = readManifest(args.out);
    const counts = Object.entries(manifest.splits).map(([k, v]) => `${v} ${k}`).join(', ');
    io.out(`${args.out}: ${manifest.shards.length} shard files in sets ${manifest.sets.join(', ')} (${counts}) in ${(result.elapsedMs / 1000).toFixed(1)} s, on the workers of ${args.nats.url}`);
  } finally {
    stopNotices();
    await nats.close();
  }
}

export interface WorkerOptions {
  readonly nats: NatsOptions;
  /** Items worked on at once. */
  readonly concurrency: number;
  /** Stops taking items (the ones in hand are finished). */
  readonly signal?: AbortSignal;
  /** Tries of an item before its error is reported to the coordinator as the part's result. Default 3. */
  readonly tries?: number;
  /** The compute backend of `apply` items (default: the item's, or auto). */
  readonly backend?: string;
  readonly log: (line: string) => void;
}

/** `worker --nats URL`: takes work items until stopped. @returns how many it finished. */
export async function runWorker(o: WorkerOptions): Promise<number> {
  if (!Number.isInteger(o.concurrency) || o.concurrency < 1) throw new UsageError(`--concurrency must be an integer ≥ 1, got ${o.concurrency}`);
  const name = `${hostname()}:${process.pid}`;
  const nats = await openNats(o.nats, `st-inpaint worker ${name}`);
  const consumer = await nats.js.consumers.get(WORK_STREAM, WORKERS);
  const ackWaitMs = (o.nats.ackWait ?? 30) * 1000;
  const tries = o.tries ?? 3;
  let finished = 0;
  o.log(`worker ${name}: taking work from ${o.nats.url}, ${o.concurrency} at a time`);
  const checkpoints = new Map<string, Promise<string>>();
  const announce = (item: ExportItem | ApplyItem, notice: Notice & { summary?: ApplySummary }) => nats.js.publish(doneSubject(item.job), JSON.stringify(notice), { msgID: `${item.session}.${item.k}` });
  const handle = async (msg: JsMsg): Promise<void> => {
    // Tells the server this worker is alive, so that a long part is not handed to another.
    const beat = setInterval(() => msg.working(), Math.max(200, ackWaitMs / 3));
    let item: WorkItem | undefined;
    try {
      item = msg.json<WorkItem>();
      if (item.kind !== 'export' && item.kind !== 'apply' && item.kind !== 'clips') throw new UsageError(`unknown work item kind "${String((item as { kind: unknown }).kind)}"`);
      const again = msg.info.deliveryCount > 1 ? ` (delivery ${msg.info.deliveryCount})` : '';
      const what = itemName(item);
      o.log(`taking ${what} of job ${item.job}${again}`);
      const started = performance.now();
      // The result is stored before it is announced, and announced before the item is acked.
      let line: string;
      if (item.kind === 'export') {
        const result = await runExportItem(item);
        await nats.store.putBlob({ name: objectName(item.job, item.k) }, result.bytes);
        await announce(item, { k: item.k, clips: result.clips, worker: name });
        line = `${result.clips} clips, ${(result.bytes.byteLength / 2 ** 20).toFixed(1)} MiB`;
      } else if (item.kind === 'apply') {
        const summary = await runApplyItem(nats, item, checkpoints, o.backend);
        await announce(item, { k: item.k, clips: 1, worker: name, summary });
        line = `${summary.frames} frames`;
      } else {
        const sent = await runClipsItem(nats, item, findDataset, name, () => msg.working());
        line = sent === undefined ? 'its reader has ended, stopped' : `${sent} clips streamed`;
      }
      await msg.ackAck();
      finished += 1;
      o.log(`${what} of job ${item.job}${again}: ${line}, in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } catch (err) {
      const what = item ? `${itemName(item)} of job ${item.job}` : 'a work item';
      if (!item || err instanceof UsageError || msg.info.deliveryCount >= tries) {
        o.log(`${what} failed: ${oneLine(err)}`);
        if (item?.kind === 'clips') await reportClipsFailure(nats, item, name, oneLine(err)).catch(() => {});
        else if (item) await announce(item, { k: item.k, clips: 0, worker: name, error: oneLine(err) }).catch(() => {});
        msg.term(oneLine(err));
      } else {
        o.log(`${what} failed (try ${msg.info.deliveryCount} of ${tries}): ${oneLine(err)}; handed back`);
        msg.nak(1000);
      }
    } finally {
      clearInterval(beat);
    }
  };
  const lane = async (): Promise<void> => {
    while (!o.signal?.aborted) {
      const msg = await consumer.next({ expires: 1000 });
      if (msg) await handle(msg);
    }
  };
  try {
    await Promise.all(Array.from({ length: o.concurrency }, lane));
  } finally {
    await nats.close();
    for (const dir of checkpoints.values()) rmSync(await dir.catch(() => ''), { recursive: true, force: true });
  }
  return finished;
}

const itemName = (item: WorkItem): string => (item.kind === 'apply' ? `video ${item.video}` : `part ${item.k}`);

/** The videos of an input folder, by name. */
export function videosIn(folder: string): string[] {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new UsageError(`--input ${folder}: no such folder`);
  const videos = readdirSync(folder).filter((f) => /\.(avi|mp4|mkv|mov|webm|m4v|mpg|mpeg)$/i.test(f)).sort();
  if (videos.length === 0) throw new UsageError(`--input ${folder}: no video files (.avi, .mp4, .mkv, .mov, .webm, …)`);
  return videos;
}

/** Where `apply` writes the fill of `video` in an output folder: the same name, FFV1 in Matroska (lossless). */
export const filledName = (video: string): string => `${basename(video, extname(video))}.mkv`;

/** How every video of a folder is filled (the `apply` options that are not paths). */
export type ApplySettings = Pick<ApplyOptions, 'occlusion' | 'occlusionOptions' | 'seed' | 'fill' | 'backend'>;

/** One video of an `apply` job, as a work item: the checkpoint and the video are in the object store. */
export interface ApplyItem {
  readonly kind: 'apply';
  readonly job: string;
  readonly session: string;
  readonly k: number;
  readonly video: string;
  /** The checkpoint's files, stored under `<job>/checkpoint/<file>`. */
  readonly checkpointFiles: readonly string[];
  readonly settings: ApplySettings;
}

type WorkItem = ExportItem | ApplyItem | ClipsItem;

/** `apply --input FOLDER --output FOLDER`: every video of the folder, one after the other; videos already filled are kept. */
export async function applyFolder(o: { checkpoint: string; input: string; output: string; settings: ApplySettings; signal?: AbortSignal }, io: Io): Promise<void> {
  const videos = videosIn(o.input);
  mkdirSync(o.output, { recursive: true });
  for (const video of videos) {
    const target = join(o.output, filledName(video));
    if (existsSync(target)) {
      io.err(`${target}: already there, kept`);
      continue;
    }
    const s = await inpaintVideo({ ...o.settings, checkpoint: o.checkpoint, input: join(o.input, video), output: target, log: () => {}, ...(o.signal && { signal: o.signal }) });
    io.out(`${target}: ${s.frames} frames of ${s.width}×${s.height} in ${s.seconds.toFixed(1)} s${s.maskedMae === undefined ? '' : `; masked MAE ${s.maskedMae.toFixed(4)}, PSNR ${s.psnr!.toFixed(2)} dB`}`);
  }
}

async function putFile(nats: Nats, name: string, path: string): Promise<void> {
  await nats.store.put({ name }, Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>);
}

/** Writes an object to `path` (atomically: a temporary file renamed once complete). */
async function getFile(nats: Nats, name: string, path: string): Promise<void> {
  const result = await nats.store.get(name);
  if (!result) throw new Error(`${name} is missing from the NATS object store (bucket "${BUCKET}")`);
  const partial = `${path}.partial`;
  try {
    await pipeline(Readable.fromWeb(result.data as never), createWriteStream(partial));
    const failure = await result.error;
    if (failure) throw failure;
    renameSync(partial, path);
  } finally {
    rmSync(partial, { force: true });
  }
}

/**
 * `apply --input FOLDER --output FOLDER --nats URL`: one work item per video. The checkpoint and
 * each video go to the object store, so workers need no shared disk; each fill comes back the same
 * way and is written where a local run writes it. Videos already filled are kept, so the same
 * command after a crash (with `--resume` for the job in NATS) does only what is left.
 */
export async function distributedApply(o: { checkpoint: string; input: string; output: string; settings: ApplySettings; nats: NatsOptions; resume: boolean }, io: Io): Promise<void> {
  const videos = videosIn(o.input);
  const checkpoint = resolveCheckpoint(o.checkpoint);
  const checkpointFiles = readdirSync(checkpoint).filter((f) => statSync(join(checkpoint, f)).isFile()).sort();
  mkdirSync(o.output, { recursive: true });
  const digest = createHash('sha256');
  for (const f of checkpointFiles) digest.update(f).update(readFileSync(join(checkpoint, f)));
  const job = digest.update(JSON.stringify({ videos, input: o.input, settings: o.settings })).digest('hex').slice(0, 16);
  const nats = await openNats(o.nats, `st-inpaint apply ${job}`);
  let stop = (): void => {};
  try {
    await earlierNotices(nats, job, o.resume, 'videos of this apply');
    const todo = videos.map((video, k) => ({ video, k })).filter(({ video }) => {
      const kept = existsSync(join(o.output, filledName(video)));
      if (kept) io.err(`${join(o.output, filledName(video))}: already there, kept`);
      return !kept;
    });
    const session = randomUUID();
    for (const f of checkpointFiles) await putFile(nats, `${job}/checkpoint/${f}`, join(checkpoint, f));
    const consumer = await nats.js.consumers.get(DONE_STREAM, { filter_subjects: doneSubject(job) });
    const messages = await consumer.consume();
    stop = () => void messages.stop();
    for (const { video, k } of todo) {
      await putFile(nats, `${job}/input/${k}`, join(o.input, video));
      const item: ApplyItem = { kind: 'apply', job, session, k, video, checkpointFiles, settings: o.settings };
      await nats.js.publish(workSubject(job), JSON.stringify(item), { msgID: `${session}.${k}` });
    }
    io.err(`job ${job}: ${todo.length} videos on the workers of ${o.nats.url}`);
    const waiting = new Set(todo.map((t) => t.k));
    const failures: string[] = [];
    if (waiting.size > 0) {
      for await (const m of messages) {
        const notice = m.json<Notice & { summary?: ApplySummary }>();
        if (!waiting.has(notice.k)) continue;
        waiting.delete(notice.k);
        const video = videos[notice.k]!;
        const target = join(o.output, filledName(video));
        if (notice.error) failures.push(`${video}: ${notice.error} (on ${notice.worker})`);
        else {
          await getFile(nats, `${job}/output/${notice.k}`, target);
          const s = notice.summary!;
          io.out(`${target}: ${s.frames} frames of ${s.width}×${s.height} in ${s.seconds.toFixed(1)} s on ${notice.worker}${s.maskedMae === undefined ? '' : `; masked MAE ${s.maskedMae.toFixed(4)}, PSNR ${s.psnr!.toFixed(2)} dB`}`);
        }
        if (waiting.size === 0) break;
      }
    }
    stop();
    await removeJob(nats, job);
    if (failures.length > 0) throw new Error(`${failures.length} of ${todo.length} videos failed: ${failures.join('; ')}`);
  } finally {
    stop();
    await nats.close();
  }
}

/** Runs one video of an apply job in a scratch folder; the fill goes to the object store. */
async function runApplyItem(nats: Nats, item: ApplyItem, checkpoints: Map<string, Promise<string>>, backend: string | undefined): Promise<ApplySummary> {
  // A worker fetches a job's checkpoint once.
  let dir = checkpoints.get(item.job);
  if (!dir) {
    dir = (async () => {
      const target = mkdtempSync(join(tmpdir(), `st-inpaint-checkpoint-${item.job}-`));
      for (const f of item.checkpointFiles) await getFile(nats, `${item.job}/checkpoint/${f}`, join(target, f));
      return target;
    })();
    checkpoints.set(item.job, dir);
  }
  const work = mkdtempSync(join(tmpdir(), 'st-inpaint-apply-'));
  try {
    const input = join(work, `input${extname(item.video)}`);
    const output = join(work, 'output.mkv');
    await getFile(nats, `${item.job}/input/${item.k}`, input);
    const summary = await inpaintVideo({ ...item.settings, ...(backend && { backend }), checkpoint: await dir, input, output, name: item.video });
    await putFile(nats, `${item.job}/output/${item.k}`, output);
    return summary;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

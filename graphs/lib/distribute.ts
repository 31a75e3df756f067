/**
 * `run <graph> --nats URL --distribute STAGE`: a dataset's chain, up to and including its last
 * stage STAGE, runs on `st-inpaint worker` processes; the training process consumes the clips they
 * send, in the order a local run reads them, so the run is the same run (same seeds, same
 * losses). The rest of the graph (shuffle, fit, occlude, batches, training) stays here.
 *
 * Each read of a split (every epoch re-reads it, as locally) is a job: one work item per part of
 * the split (the dataset's own parts, see `Dataset.parts`, or the whole split as one part). A worker
 * streams a part's clips back in chunks of `chunk` clips through the object store, announcing each.
 * The credit crosses the network: a worker stores chunk c of a part only once this process has
 * consumed and deleted chunk c − window, and parts are published two ahead of the one consumed, so
 * a slow trainer slows the workers and memory stays bounded on both sides (a chunk in hand here,
 * `window` chunks per part in the store, one part per worker lane).
 *
 * A worker killed mid-part loses nothing: the part goes to another worker after the ack wait,
 * which starts it again; chunks this process already took are dropped by their index.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import { UsageError } from '../../pipeline/errors.ts';
import { decodeFrameBatch, encodeFrameBatch, type FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import type { Distribution } from '../../pipeline/graph.ts';
import { JobNotices, doneSubject, openNats, removeJob, workSubject, type Nats } from '../../pipeline/nats.ts';
import { pull } from '../../pipeline/operators/pull.ts';
import { source } from '../../pipeline/operators/source.ts';
import { collectStages, type Stream } from '../../pipeline/stage.ts';
import type { Dataset, DatasetClip } from '../../datasets/index.ts';

/** One part of a split, as a work item. */
export interface ClipsItem {
  readonly kind: 'clips';
  readonly job: string;
  readonly k: number;
  readonly dataset: string;
  readonly source?: string;
  /** The dataset's options, the split and the part's own options included. */
  readonly given: Readonly<Record<string, unknown>>;
  readonly onError: 'fail' | 'skip';
  readonly stage: string;
  readonly chunk: number;
  readonly window: number;
}

/** A chunk's notice. */
interface ChunkNotice {
  readonly k: number;
  readonly c: number;
  readonly clips: number;
  /** The part's last chunk. */
  readonly last: boolean;
  readonly worker: string;
  readonly error?: string;
}

const chunkName = (job: string, k: number, c: number): string => `${job}/${k}/${c}`;
/** Present while the job's reader lives; a worker stops a part whose job is gone. */
const liveName = (job: string): string => `${job}/live`;

/** The names of a dataset chain's stages, in order (its last is what `--distribute` names). */
export function chainStages(dataset: Dataset, given: Readonly<Record<string, unknown>>, location: string | undefined): string[] {
  return collectStages(() => dataset.open(given, location)).stages;
}

/** Clips as bytes: a JSON header (ids, splits, physical scales) and one Arrow IPC stream of their pixels and masks. */
export function encodeClips(spec: FrameBatchSpec, clips: readonly DatasetClip[]): Uint8Array {
  const body = clips.length ? tableToIPC(new Table([encodeFrameBatch(spec, clips)]), 'stream') : new Uint8Array(0);
  const header = Buffer.from(JSON.stringify(clips.map((c) => ({ split: c.split, ...(c.physical && { physical: c.physical }), mask: c.mask !== undefined, seed: c.seed?.toString(), process: c.process }))));
  const out = Buffer.alloc(4 + header.byteLength + body.byteLength);
  out.writeUInt32LE(header.byteLength, 0);
  header.copy(out, 4);
  out.set(body, 4 + header.byteLength);
  return out;
}

export function decodeClips(bytes: Uint8Array): DatasetClip[] {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = buffer.readUInt32LE(0);
  const header = JSON.parse(buffer.toString('utf8', 4, 4 + length)) as Array<{ split: DatasetClip['split']; physical?: DatasetClip['physical']; mask: boolean; seed?: string; process?: string }>;
  if (header.length === 0) return [];
  const clips = tableFromIPC(buffer.subarray(4 + length)).batches.flatMap((b) => decodeFrameBatch(b).clips);
  return clips.map((clip, i) => {
    const h = header[i]!;
    return {
      id: clip.id,
      frames: clip.frames,
      split: h.split,
      ...(h.mask && { mask: clip.mask! }),
      ...(h.seed !== undefined && { seed: BigInt(h.seed) }),
      ...(h.process !== undefined && { process: h.process }),
      ...(h.physical && { physical: h.physical }),
    };
  });
}

export interface RemoteDatasetOptions {
  readonly dataset: Dataset;
  readonly given: Readonly<Record<string, unknown>>;
  readonly location?: string;
  readonly onError: 'fail' | 'skip';
  readonly distribute: Distribution;
  readonly log?: (line: string) => void;
}

/**
 * The dataset's clips (`given` names the split) read by workers: a source stage named
 * `workers:<stage>` that stands for the chain it replaces.
 * @throws UsageError when `distribute.stage` is not the last stage of the dataset's chain.
 */
export function remoteDataset(o: RemoteDatasetOptions): Stream<DatasetClip> {
  const d = o.distribute;
  const stages = chainStages(o.dataset, o.given, o.location);
  if (stages.at(-1) !== d.stage) throw new UsageError(`--distribute ${d.stage}: the workers run dataset "${o.dataset.name}"'s whole chain (${stages.join(' → ')}), so name its last stage, ${stages.at(-1)}`);
  if (!Number.isInteger(d.chunk) || d.chunk < 1 || !Number.isInteger(d.window) || d.window < 1) throw new UsageError(`--distribute-chunk and --distribute-window must be integers ≥ 1, got ${d.chunk} and ${d.window}`);
  const base = createHash('sha256').update(JSON.stringify({ dataset: o.dataset.name, given: o.given, location: o.location })).digest('hex').slice(0, 12);
  async function* read(signal: AbortSignal): AsyncGenerator<DatasetClip> {
    const parts = (await o.dataset.parts?.(o.given, o.location, d.chunk * 8)) ?? [{}];
    const nats = await openNats(d.nats, `st-inpaint run (${o.dataset.name})`);
    // One job per read of the split (an epoch), so no notice of an earlier read is taken for this one.
    const job = `${base}-${randomUUID().slice(0, 8)}`;
    let stop = (): void => {};
    try {
      await nats.store.putBlob({ name: liveName(job) }, new Uint8Array(0));
      // Chunks taken so far, by part.
      const consumed = new Map<number, number>();
      const opened = await JobNotices.open<ChunkNotice>(
        nats,
        job,
        async (n) => {
          if (n.error) return `error/${n.k}`;
          // A chunk already taken, sent again by a worker that restarted the part: its copy goes.
          if (n.c < (consumed.get(n.k) ?? 0)) return void (await nats.store.delete(chunkName(job, n.k, n.c)).catch(() => {}));
          return `${n.k}/${n.c}`;
        },
        signal,
      );
      stop = opened.stop;
      const notices = opened.notices;
      let published = 0;
      const publish = async (k: number): Promise<void> => {
        const item: ClipsItem = { kind: 'clips', job, k, dataset: o.dataset.name, ...(o.location && { source: o.location }), given: { ...o.given, ...parts[k] }, onError: o.onError, stage: d.stage, chunk: d.chunk, window: d.window };
        await nats.js.publish(workSubject(job), JSON.stringify(item), { msgID: `${job}.${k}` });
      };
      for (let k = 0; k < parts.length; k++) {
        while (published < Math.min(parts.length, k + 2)) await publish(published++);
        for (let c = 0; ; c++) {
          const n = await notices.wait(`error/${k}`, `${k}/${c}`);
          if (n.error) throw new Error(`part ${k} of dataset "${o.dataset.name}" failed on ${n.worker}: ${n.error}`);
          const blob = await nats.store.getBlob(chunkName(job, k, c));
          if (!blob) throw new Error(`chunk ${c} of part ${k}: missing from the NATS object store`);
          notices.delete(`${k}/${c}`);
          consumed.set(k, c + 1);
          yield* decodeClips(blob);
          // Taken: its place in the store is the worker's credit for chunk c + window.
          await nats.store.delete(chunkName(job, k, c));
          if (n.last) break;
        }
      }
    } finally {
      stop();
      await nats.store.delete(liveName(job)).catch(() => {});
      await removeJob(nats, job).catch((err: unknown) => o.log?.(`cleaning up job ${job}: ${(err as Error).message}`));
      await nats.close();
    }
  }
  // Torn down (Ctrl-C, the end of training), the reader stops waiting for the workers at once:
  // a generator's own return() would wait for the notice it awaits.
  return source(`workers:${d.stage}`, () => {
    const abort = new AbortController();
    const generator = read(abort.signal);
    return {
      [Symbol.asyncIterator]: () => ({
        next: () => generator.next(),
        return: async (value?: unknown) => {
          abort.abort();
          return generator.return(value as never);
        },
      }),
    };
  });
}

/**
 * A worker's side: the dataset's chain on the part, its clips sent in chunks, each stored only
 * when the reader has made room for it.
 * @returns the number of clips sent, or undefined when the job was gone (its reader ended).
 */
export async function runClipsItem(nats: Nats, item: ClipsItem, findDataset: (name: string) => Dataset, worker: string, keepAlive: () => void): Promise<number | undefined> {
  const dataset = findDataset(item.dataset);
  const { spec, clips } = dataset.open(item.given, item.source, { onError: item.onError });
  // A deleted object leaves a marker: its info says `deleted`.
  const present = async (name: string): Promise<boolean> => {
    const info = await nats.store.info(name);
    return info !== null && !info.deleted;
  };
  const alive = (): Promise<boolean> => present(liveName(item.job));
  let c = 0;
  let sent = 0;
  let chunk: DatasetClip[] = [];
  const send = async (last: boolean): Promise<boolean> => {
    // Credit: chunk c − window of this part has been taken (and deleted) by the reader.
    if (c >= item.window) {
      while (await present(chunkName(item.job, item.k, c - item.window))) {
        keepAlive();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    if (!(await alive())) return false;
    await nats.store.putBlob({ name: chunkName(item.job, item.k, c) }, encodeClips(spec, chunk));
    const notice: ChunkNotice = { k: item.k, c, clips: chunk.length, last, worker };
    await nats.js.publish(doneSubject(item.job), JSON.stringify(notice));
    sent += chunk.length;
    chunk = [];
    c += 1;
    return true;
  };
  for await (const clip of pull(clips)) {
    chunk.push(clip);
    if (chunk.length === item.chunk && !(await send(false))) return undefined;
  }
  return (await send(true)) ? sent : undefined;
}

/** Announces a part's failure to its reader. */
export async function reportClipsFailure(nats: Nats, item: ClipsItem, worker: string, error: string): Promise<void> {
  const notice: ChunkNotice = { k: item.k, c: 0, clips: 0, last: true, worker, error };
  await nats.js.publish(doneSubject(item.job), JSON.stringify(notice));
}

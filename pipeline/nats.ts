/**
 * The NATS JetStream side of distributed runs: the connection (token, user and password, TLS),
 * and the three places a job lives on the server, made on first use:
 *
 * - the work stream `ST_INPAINT_WORK` (work-queue retention, subjects `sti.work.<job>`): one
 *   message per work item, read by every worker through the durable pull consumer `workers`
 *   with explicit acks. An item not acked within the ack wait (a worker killed with -9) goes to
 *   another worker; a live worker extends the wait while it works.
 * - the done stream `ST_INPAINT_DONE` (subjects `sti.done.<job>`): one small message per finished
 *   item, published with the item's id as message id, so that a redelivered item's second notice
 *   is dropped by the server's duplicate window (and by the coordinator, which counts by id).
 * - the object store `st-inpaint`: each item's result under `<job>/<item>`, written before its
 *   notice; results of any size travel in the store's chunks, so no message exceeds NATS's
 *   default 1 MiB payload.
 *
 * Everything a coordinator needs to resume after a crash is in these: it re-reads the notices of
 * its job from the start.
 */
import { readFileSync } from 'node:fs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { UsageError } from './errors.ts';

export const WORK_STREAM = 'ST_INPAINT_WORK';
export const DONE_STREAM = 'ST_INPAINT_DONE';
export const WORKERS = 'workers';
export const BUCKET = 'st-inpaint';
export const workSubject = (job: string): string => `sti.work.${job}`;
export const doneSubject = (job: string): string => `sti.done.${job}`;

export interface NatsOptions {
  /** Server URL(s), comma-separated: nats://host:4222, tls://host:4222. */
  readonly url: string;
  readonly token?: string;
  readonly user?: string;
  readonly password?: string;
  /** PEM files: the CA that signed the server's certificate, and a client certificate and key when the server asks for one. */
  readonly tlsCa?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  /** Seconds a work item may go unacknowledged before another worker gets it (live workers extend it). Default 30. */
  readonly ackWait?: number;
}

export interface Nats {
  readonly connection: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly store: ObjectStore;
  close(): Promise<void>;
}

const NANOS = 1_000_000_000;

/**
 * Connects and makes sure the streams, the workers' consumer and the object store exist.
 * @throws UsageError with one line when the server cannot be reached or refuses the credentials.
 */
export async function openNats(o: NatsOptions, name: string): Promise<Nats> {
  const servers = o.url.split(',').map((s) => s.trim()).filter(Boolean);
  if (servers.length === 0) throw new UsageError('--nats needs a server URL, for example nats://127.0.0.1:4222');
  const tls = o.tlsCa || o.tlsCert ? { ...(o.tlsCa && { ca: readFileSync(o.tlsCa, 'utf8') }), ...(o.tlsCert && { cert: readFileSync(o.tlsCert, 'utf8') }), ...(o.tlsKey && { key: readFileSync(o.tlsKey, 'utf8') }) } : undefined;
  let connection: NatsConnection;
  try {
    connection = await connect({
      servers,
      name,
      ...(o.token && { token: o.token }),
      ...(o.user && { user: o.user, pass: o.password ?? '' }),
      ...(tls && { tls }),
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
    });
  } catch (err) {
    const message = (err as Error).message ?? String(err);
    if (/authori[sz]ation|authentication|auth/i.test(message)) throw new UsageError(`${o.url} refused the connection: ${message} (check --nats-token, or --nats-user and --nats-password)`);
    throw new UsageError(`cannot connect to NATS at ${o.url}: ${message}`);
  }
  try {
    const jsm = await jetstreamManager(connection);
    const window = 10 * 60 * NANOS;
    await ensureStream(jsm, { name: WORK_STREAM, subjects: ['sti.work.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File, duplicate_window: window, discard: DiscardPolicy.Old });
    await ensureStream(jsm, { name: DONE_STREAM, subjects: ['sti.done.>'], retention: RetentionPolicy.Limits, storage: StorageType.File, duplicate_window: window, discard: DiscardPolicy.Old });
    const ackWait = Math.round((o.ackWait ?? 30) * NANOS);
    try {
      await jsm.consumers.info(WORK_STREAM, WORKERS);
      await jsm.consumers.update(WORK_STREAM, WORKERS, { ack_wait: ackWait });
    } catch {
      await jsm.consumers.add(WORK_STREAM, { durable_name: WORKERS, ack_policy: AckPolicy.Explicit, ack_wait: ackWait, max_deliver: -1, max_ack_pending: 10_000 });
    }
    const js = jetstream(connection);
    const store = await new Objm(js).create(BUCKET, { storage: StorageType.File });
    return { connection, js, jsm, store, close: () => connection.drain() };
  } catch (err) {
    await connection.close();
    const message = (err as Error).message ?? String(err);
    if (/jetstream not enabled|503/i.test(message)) throw new UsageError(`NATS at ${o.url} has no JetStream (start nats-server with -js): ${message}`);
    throw err;
  }
}

async function ensureStream(jsm: JetStreamManager, config: Parameters<JetStreamManager['streams']['add']>[0] & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(config.name);
  } catch {
    await jsm.streams.add(config);
  }
}

/**
 * How many notices an earlier coordinator of `job` left (a crashed one; a finished job is removed).
 * @throws UsageError unless `resume`, when there are some: the two runs must not be mixed by accident.
 */
export async function earlierNotices(nats: Nats, job: string, resume: boolean, what: string): Promise<number> {
  const info = await nats.jsm.streams.info(DONE_STREAM, { subjects_filter: doneSubject(job) });
  const earlier = info.state.subjects?.[doneSubject(job)] ?? 0;
  if (earlier > 0 && !resume) throw new UsageError(`NATS holds ${earlier} finished ${what} from an earlier run (job ${job}); add --resume to continue it`);
  return earlier;
}

/**
 * A job's notices, replayed from the first (an ordered consumer on its done subject) and kept by
 * key until taken: a coordinator waits for the notice it needs next, whatever order the workers
 * finish in. The first notice under a key is kept (a redelivered item's second one adds nothing).
 */
export class JobNotices<N> {
  private readonly kept = new Map<string, N>();
  private wake: () => void = () => {};
  private failed: unknown;

  private constructor(private readonly signal?: AbortSignal) {
    signal?.addEventListener('abort', () => this.wake());
  }

  /**
   * @param keyOf a notice's key; undefined: the notice is not kept (it may be acted on first).
   * @param signal stops a wait at once when it aborts (a reader torn down).
   */
  static async open<N>(nats: Nats, job: string, keyOf: (notice: N) => string | undefined | Promise<string | undefined>, signal?: AbortSignal): Promise<{ notices: JobNotices<N>; stop: () => void }> {
    const notices = new JobNotices<N>(signal);
    const consumer = await nats.js.consumers.get(DONE_STREAM, { filter_subjects: doneSubject(job) });
    const messages = await consumer.consume();
    void (async () => {
      try {
        for await (const m of messages) {
          const notice = m.json<N>();
          const key = await keyOf(notice);
          if (key !== undefined && !notices.kept.has(key)) notices.kept.set(key, notice);
          notices.wake();
        }
      } catch (err) {
        notices.failed = err;
        notices.wake();
      }
    })();
    return { notices, stop: () => void messages.stop() };
  }

  /**
   * The notice under the first of `keys` that has one, waiting until one does.
   * @throws when the notices cannot be read any more, or the signal aborted.
   */
  async wait(...keys: string[]): Promise<N> {
    for (;;) {
      if (this.signal?.aborted) throw new Error('the reader was torn down');
      if (this.failed) throw this.failed;
      for (const key of keys) {
        const notice = this.kept.get(key);
        if (notice !== undefined) return notice;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Forgets a notice once it is acted on. */
  delete(key: string): void {
    this.kept.delete(key);
  }
}

/** Removes a job from the server: its work items, its notices, and its objects (`<job>/…`). */
export async function removeJob(nats: Nats, job: string): Promise<void> {
  await nats.jsm.streams.purge(WORK_STREAM, { filter: workSubject(job) });
  await nats.jsm.streams.purge(DONE_STREAM, { filter: doneSubject(job) });
  for (const info of await nats.store.list()) if (info.name.startsWith(`${job}/`)) await nats.store.delete(info.name);
}

/** The connection options of a command line's `--nats…` flags (undefined without `--nats`). */
export function natsOptionsOf(args: Readonly<Record<string, unknown>>): NatsOptions | undefined {
  const url = args['nats'] as string | undefined;
  if (!url) {
    for (const flag of ['nats-token', 'nats-user', 'nats-password', 'nats-tls-ca', 'nats-tls-cert', 'nats-tls-key']) if (args[flag]) throw new UsageError(`--${flag} needs --nats URL`);
    return undefined;
  }
  const text = (k: string): string | undefined => (args[k] as string | undefined) || undefined;
  return {
    url,
    ...(text('nats-token') && { token: text('nats-token') }),
    ...(text('nats-user') && { user: text('nats-user'), password: text('nats-password') ?? process.env['ST_INPAINT_NATS_PASSWORD'] ?? '' }),
    ...(text('nats-tls-ca') && { tlsCa: text('nats-tls-ca') }),
    ...(text('nats-tls-cert') && { tlsCert: text('nats-tls-cert') }),
    ...(text('nats-tls-key') && { tlsKey: text('nats-tls-key') }),
    ...(typeof args['ack-wait'] === 'number' && { ackWait: args['ack-wait'] as number }),
  };
}

/** The `--nats…` options of a command, for yargs. */
export const NATS_ARGS = {
  nats: { type: 'string', describe: 'NATS server URL(s) with JetStream (nats://host:4222): the work runs on `st-inpaint worker` processes' },
  'nats-token': { type: 'string', describe: "the server's authorization token" },
  'nats-user': { type: 'string', describe: 'user name (the password from --nats-password or ST_INPAINT_NATS_PASSWORD)' },
  'nats-password': { type: 'string', describe: 'password of --nats-user' },
  'nats-tls-ca': { type: 'string', describe: "PEM file of the CA that signed the server's certificate (tls:// URLs)" },
  'nats-tls-cert': { type: 'string', describe: 'PEM client certificate, when the server verifies clients' },
  'nats-tls-key': { type: 'string', describe: 'PEM key of --nats-tls-cert' },
  'ack-wait': { type: 'number', default: 30, describe: 'seconds before an unacknowledged work item goes to another worker (a live worker extends it)' },
} as const;

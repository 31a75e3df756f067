/**
 * HTTP bytes that survive dropped connections (node-fetch):
 * - `httpChunks(url)`: the body as chunks, pulled one at a time (so the socket is paused while the
 *   consumer is); when the connection drops or stalls past the timeout, it asks again with
 *   `Range: bytes=<delivered>-` and goes on, so the consumer sees exactly the bytes of one
 *   uninterrupted response. Retries back off exponentially.
 * - `fetchToCache(url, …)`: a download into a cache folder under a temporary name, resumed from a
 *   partial file by a Range request, checked against a SHA-256 when one is declared, and renamed
 *   only when complete: a partial or damaged file is never mistaken for a complete one.
 * Statuses that say "later" (429 and the 5xx family) are retried like a dropped connection, after
 * the server's Retry-After when it gives one; a 404 or any other error status fails at once with
 * the URL and status. A 416 to a Range request starting at the body's end means the bytes are all
 * there (a `.partial` download that was complete). A connection silent for `timeoutMs` counts as
 * dropped. Long downloads log a progress line every `progressMs`.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, statSync, createWriteStream } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import fetch, { type Response } from 'node-fetch';

export interface FetchOptions {
  /** Attempts per request after the first. Default 5. */
  readonly retries?: number;
  /** Milliseconds without a byte before the connection counts as dropped. Default 30 000. */
  readonly timeoutMs?: number;
  /** First back-off, doubled each retry. Default 500 ms. */
  readonly backoffMs?: number;
  /** Longest wait a Retry-After header may ask for. Default 300 000 (5 min). */
  readonly maxRetryAfterMs?: number;
  /** Milliseconds between progress lines (to `log`). Default 10 000; 0: none. */
  readonly progressMs?: number;
  readonly log?: (line: string) => void;
  readonly signal?: AbortSignal;
}

export class HttpStatusError extends Error {
  constructor(
    readonly url: string,
    readonly status: number,
    statusText: string,
  ) {
    super(`${url}: HTTP ${status} ${statusText}`);
    this.name = 'HttpStatusError';
  }
}

/** A status that asks the client to come back later (429, 5xx), with the server's wait when given. */
class RetryLaterError extends Error {
  constructor(
    readonly status: number,
    statusText: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(`HTTP ${status} ${statusText}`);
  }
}

/** Retry-After as milliseconds: delay-seconds or an HTTP date. */
function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** The response from byte `from`, or `complete` when a Range request found nothing left to send. */
async function request(url: string, from: number, controller: AbortController): Promise<Response | 'complete'> {
  const response = await fetch(url, { headers: from > 0 ? { Range: `bytes=${from}-` } : {}, signal: controller.signal as never });
  if (from > 0 && response.status === 416) {
    const total = Number(/\*\/(\d+)/.exec(response.headers.get('content-range') ?? '')?.[1] ?? NaN);
    if (total === from) return 'complete';
  }
  if (from > 0 && response.status === 200) throw new Error(`${url}: the server ignored a Range request, so the download cannot resume`);
  if (response.status === 429 || response.status >= 500) throw new RetryLaterError(response.status, response.statusText, retryAfterMs(response.headers.get('retry-after')));
  if (!response.ok) throw new HttpStatusError(url, response.status, response.statusText);
  return response;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** The body of `url` from byte `start`, resuming after drops; see the module comment. */
export async function* httpChunks(url: string, o: FetchOptions = {}, start = 0): AsyncGenerator<Uint8Array> {
  const retries = o.retries ?? 5;
  const timeoutMs = o.timeoutMs ?? 30_000;
  const progressMs = o.progressMs ?? 10_000;
  let delivered = start;
  let total: number | undefined;
  let failures = 0;
  let lastProgress = performance.now();
  for (;;) {
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    o.signal?.addEventListener('abort', abort);
    let timer: NodeJS.Timeout | undefined;
    let stalled = false;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        controller.abort();
      }, timeoutMs);
    };
    try {
      arm();
      const response = await request(url, delivered, controller);
      if (response === 'complete') return;
      // The body's end, from the first response that says (a resumed one counts from its start).
      const length = Number(response.headers.get('content-length') ?? NaN);
      if (total === undefined && Number.isFinite(length)) total = delivered + length;
      arm();
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        failures = 0;
        delivered += chunk.length;
        clearTimeout(timer);
        if (progressMs > 0 && performance.now() - lastProgress >= progressMs) {
          lastProgress = performance.now();
          o.log?.(`${url}: ${mib(delivered)}${total ? ` of ${mib(total)} (${((100 * delivered) / total).toFixed(0)} %)` : ''} received`);
        }
        yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        arm();
      }
      clearTimeout(timer);
      return;
    } catch (err) {
      clearTimeout(timer);
      if (err instanceof HttpStatusError || o.signal?.aborted) throw err;
      const reason = stalled ? `no data for ${timeoutMs / 1000} s` : (err as Error).message;
      if (++failures > retries) throw new Error(`${url}: gave up after ${retries + 1} attempts at byte ${delivered}: ${reason}`);
      const backoff = (o.backoffMs ?? 500) * 2 ** (failures - 1);
      const asked = err instanceof RetryLaterError ? err.retryAfterMs : undefined;
      const wait = asked === undefined ? backoff : Math.min(asked, o.maxRetryAfterMs ?? 300_000);
      o.log?.(`${url}: ${err instanceof RetryLaterError ? `the server answered ${reason}` : `connection lost (${reason})`} at byte ${delivered}; retrying in ${wait} ms`);
      await new Promise((resolve) => setTimeout(resolve, wait));
    } finally {
      o.signal?.removeEventListener('abort', abort);
    }
  }
}

export interface CacheOptions extends FetchOptions {
  /** The cache folder. */
  readonly cache: string;
  /** File name inside the cache (default: the URL's last path segment). */
  readonly name?: string;
  /** Expected SHA-256 (hex) of the whole file. */
  readonly sha256?: string;
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The cache folder for downloads: `$ST_INPAINT_CACHE`, else `$XDG_CACHE_HOME/st-inpaint`, else
 * `~/.cache/st-inpaint`.
 */
export function defaultCache(): string {
  return process.env['ST_INPAINT_CACHE'] || join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'st-inpaint');
}

/** Downloads `url` into the cache (resuming a partial file) and returns the complete file's path. */
export async function fetchToCache(url: string, o: CacheOptions): Promise<string> {
  const name = o.name ?? decodeURIComponent(new URL(url).pathname.split('/').filter(Boolean).pop() ?? 'download');
  mkdirSync(o.cache, { recursive: true });
  const path = join(o.cache, name);
  if (existsSync(path)) return path;
  const partial = `${path}.partial`;
  const start = existsSync(partial) ? statSync(partial).size : 0;
  if (start > 0) o.log?.(`${url}: resuming at byte ${start}`);
  const out = createWriteStream(partial, { flags: start > 0 ? 'a' : 'w' });
  try {
    for await (const chunk of httpChunks(url, o, start)) {
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
  } finally {
    await new Promise<void>((resolve) => out.end(() => resolve()));
  }
  if (o.sha256) {
    const got = await sha256Of(partial);
    if (got !== o.sha256.toLowerCase()) {
      rmSync(partial, { force: true });
      throw new Error(`${url}: SHA-256 ${got} does not match the declared ${o.sha256}; the download was removed`);
    }
  }
  renameSync(partial, path);
  return path;
}

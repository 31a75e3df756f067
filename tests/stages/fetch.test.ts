/**
 * Resumable HTTP against a real server on 127.0.0.1 that honours Range and can drop or stall a
 * connection mid-body: the resumed stream is byte-identical to the file; a partial download
 * resumes from its size; a wrong SHA-256 removes the download; a 404 fails at once naming the URL.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fetchToCache, httpChunks } from '../../stages/io/fetch.ts';
import { Random } from '../../stages/random.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-fetch-'));
const random = Random.fromKey('fetch');
const body = Buffer.from(Uint8Array.from({ length: 1_000_000 }, () => random.int(0, 255)));
const sha = createHash('sha256').update(body).digest('hex');

/** What the next requests to /data do: drop after n bytes, stall after n bytes, or serve fully. */
const plan: Array<{ kind: 'drop' | 'stall'; after: number } | { kind: 'status'; status: number; retryAfter?: string }> = [];
const ranges: number[] = [];
let server: Server;
let base = '';

before(async () => {
  server = createServer((req, res) => {
    if (req.url !== '/data.bin') return void res.writeHead(404, 'Not Found').end();
    const from = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
    ranges.push(from);
    const step = plan.shift();
    if (step?.kind === 'status') return void res.writeHead(step.status, step.retryAfter === undefined ? {} : { 'Retry-After': step.retryAfter }).end();
    // A Range request starting at the end: nothing left (RFC 9110 §15.5.17).
    if (from >= body.length) return void res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
    const part = body.subarray(from);
    res.writeHead(from > 0 ? 206 : 200, { 'Content-Length': part.length, ...(from > 0 ? { 'Content-Range': `bytes ${from}-${body.length - 1}/${body.length}` } : {}) });
    if (!step) return void res.end(part);
    res.write(part.subarray(0, step.after), () => {
      if (step.kind === 'drop') res.destroy();
      // 'stall': keep the socket open and silent.
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
  rmSync(scratch, { recursive: true, force: true });
});

test('a stream dropped twice and stalled once resumes with Range requests and yields exactly the file', async () => {
  plan.push({ kind: 'drop', after: 100_000 }, { kind: 'stall', after: 50_000 }, { kind: 'drop', after: 300_000 });
  ranges.length = 0;
  const chunks: Uint8Array[] = [];
  const lines: string[] = [];
  for await (const c of httpChunks(`${base}/data.bin`, { timeoutMs: 300, backoffMs: 10, log: (l) => lines.push(l) })) chunks.push(c);
  assert.ok(Buffer.concat(chunks).equals(body));
  assert.deepEqual(ranges, [0, 100_000, 150_000, 450_000]);
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, /connection lost \(.*\) at byte 100000/);
  // The stall is named as one.
  assert.match(lines[1]!, /connection lost \(no data for 0\.3 s\) at byte 150000/);
});

test('a partial download resumes from its size; a wrong SHA-256 removes the download; a 404 fails at once', async () => {
  const cache = join(scratch, 'cache');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(cache, { recursive: true });
  writeFileSync(join(cache, 'data.bin.partial'), body.subarray(0, 333_333));
  ranges.length = 0;
  const path = await fetchToCache(`${base}/data.bin`, { cache, sha256: sha, backoffMs: 10 });
  assert.deepEqual(ranges, [333_333]);
  assert.ok(readFileSync(path).equals(body));
  assert.ok(!existsSync(`${path}.partial`));

  const other = join(scratch, 'other');
  await assert.rejects(fetchToCache(`${base}/data.bin`, { cache: other, sha256: '0'.repeat(64), backoffMs: 10 }), /data\.bin: SHA-256 [0-9a-f]{64} does not match the declared 0{64}; the download was removed/);
  assert.ok(!existsSync(join(other, 'data.bin')) && !existsSync(join(other, 'data.bin.partial')));

  ranges.length = 0;
  await assert.rejects(fetchToCache(`${base}/missing.bin`, { cache: other, backoffMs: 10 }), /missing\.bin: HTTP 404 Not Found/);
});

test('statuses that say "later" (503, 429) are retried, at the start and on resume, after Retry-After when given', async () => {
  plan.push({ kind: 'status', status: 503, retryAfter: '0' }, { kind: 'drop', after: 200_000 }, { kind: 'status', status: 429 }, { kind: 'status', status: 503, retryAfter: '1' });
  ranges.length = 0;
  const lines: string[] = [];
  const chunks: Uint8Array[] = [];
  const started = performance.now();
  for await (const c of httpChunks(`${base}/data.bin`, { backoffMs: 10, log: (l) => lines.push(l) })) chunks.push(c);
  assert.ok(Buffer.concat(chunks).equals(body));
  assert.deepEqual(ranges, [0, 0, 200_000, 200_000, 200_000]);
  assert.match(lines[0]!, /the server answered HTTP 503 Service Unavailable at byte 0; retrying in 0 ms/);
  assert.match(lines[2]!, /the server answered HTTP 429 Too Many Requests at byte 200000; retrying in \d+ ms/);
  assert.match(lines[3]!, /HTTP 503 .* at byte 200000; retrying in 1000 ms/);
  assert.ok(performance.now() - started >= 1000, 'Retry-After: 1 was honoured');
});

test('a server that keeps answering 503 fails after the retries, naming the status; a stalled one names the stall', async () => {
  plan.push(...Array.from({ length: 3 }, () => ({ kind: 'status' as const, status: 503 })));
  await assert.rejects(fetchToCache(`${base}/data.bin`, { cache: join(scratch, 'busy'), retries: 2, backoffMs: 1 }), /data\.bin: gave up after 3 attempts at byte 0: HTTP 503 Service Unavailable/);
  plan.length = 0;
  plan.push(...Array.from({ length: 2 }, () => ({ kind: 'stall' as const, after: 0 })));
  const drain = async (): Promise<void> => {
    for await (const _ of httpChunks(`${base}/data.bin`, { retries: 1, timeoutMs: 100, backoffMs: 1 }));
  };
  await assert.rejects(drain(), /gave up after 2 attempts at byte 0: no data for 0\.1 s/);
});

test('a complete .partial left in the cache is recognised as complete (the server answers 416), not refetched', async () => {
  const cache = join(scratch, 'complete');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(cache, { recursive: true });
  writeFileSync(join(cache, 'data.bin.partial'), body);
  ranges.length = 0;
  const path = await fetchToCache(`${base}/data.bin`, { cache, sha256: sha, backoffMs: 10 });
  assert.deepEqual(ranges, [body.length]);
  assert.ok(readFileSync(path).equals(body));
  assert.ok(!existsSync(`${path}.partial`));
});

test('a long download says how far it has got', async () => {
  plan.push({ kind: 'drop', after: 500_000 });
  const lines: string[] = [];
  for await (const _ of httpChunks(`${base}/data.bin`, { backoffMs: 1, progressMs: 1, log: (l) => lines.push(l) }));
  const progress = lines.filter((l) => / received$/.test(l));
  assert.ok(progress.length > 0);
  // Of the whole body, also after the resume (whose response is only the rest).
  assert.ok(progress.every((l) => /data\.bin: \d+\.\d MiB of 1\.0 MiB \(\d+ %\) received/.test(l)), progress.join('\n'));
});

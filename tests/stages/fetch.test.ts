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
const plan: Array<{ kind: 'drop' | 'stall'; after: number }> = [];
const ranges: number[] = [];
let server: Server;
let base = '';

before(async () => {
  server = createServer((req, res) => {
    if (req.url !== '/data.bin') return void res.writeHead(404, 'Not Found').end();
    const from = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
    ranges.push(from);
    const step = plan.shift();
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
  assert.match(lines[0]!, /connection lost at byte 100000/);
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

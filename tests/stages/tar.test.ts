/**
 * Tar entries streamed without extraction: a real tar (written by tar-stream's packer) read back
 * through the pipeline's source in small chunks gives every entry's exact bytes; entries with
 * escaping paths are refused by name; a truncated archive fails naming it and the entry; nothing
 * is written to disk besides the fixture.
 */
import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import tar from 'tar-stream';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { checkEntryPath, tarChunks, tarMembers } from '../../stages/io/tar.ts';
import { Random } from '../../stages/random.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-tar-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

async function pack(entries: Array<{ name: string; bytes: Uint8Array }>, path: string): Promise<void> {
  const p = tar.pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((resolve) => p.on('end', () => resolve()));
  for (const e of entries) p.entry({ name: e.name, size: e.bytes.length }, Buffer.from(e.bytes));
  p.entry({ name: 'folder/', type: 'directory' });
  p.finalize();
  await done;
  writeFileSync(path, Buffer.concat(chunks));
}

test('entries come back exactly, chunk by chunk, through a pipeline source reading 1000-byte pieces', async () => {
  const random = Random.fromKey('tar');
  const entries = [0, 1, 511, 512, 513, 100_000].map((n, i) => ({ name: `softmotion30_44k/train/part-${i}.tfrecords`, bytes: Uint8Array.from({ length: n }, () => random.int(0, 255)) }));
  const path = join(scratch, 'a.tar');
  await pack(entries, path);
  const before = readdirSync(scratch).length;
  const chunks = await lastValueFrom(source('tar', () => tarChunks(createReadStream(path, { highWaterMark: 1000 }), path)).pipe(unwrap(), toArray()));
  const files = new Map<string, number[]>();
  for (const c of chunks) {
    const bytes = files.get(c.path) ?? [];
    assert.equal(c.offset, bytes.length);
    bytes.push(...c.bytes);
    files.set(c.path, bytes);
    assert.equal(c.last, bytes.length === c.size);
  }
  assert.deepEqual([...files.keys()], entries.map((e) => e.name));
  entries.forEach((e) => assert.deepEqual(files.get(e.name), Array.from(e.bytes)));
  assert.equal(readdirSync(scratch).length, before, 'nothing extracted to disk');
});

test('refuses escaping paths by name and names the archive and entry of a truncated tar', async () => {
  assert.throws(() => checkEntryPath('x.tar', '../etc/passwd'), /x\.tar: entry "\.\.\/etc\/passwd" would be written outside its folder/);
  assert.throws(() => checkEntryPath('x.tar', '/abs/file'), /outside its folder/);
  assert.doesNotThrow(() => checkEntryPath('x.tar', 'a/b..c/d'));
  const evil = join(scratch, 'evil.tar');
  await pack([{ name: 'ok.txt', bytes: Uint8Array.of(1) }, { name: 'a/../../escape.txt', bytes: Uint8Array.of(2) }], evil);
  await assert.rejects(lastValueFrom(source('tar', () => tarChunks(createReadStream(evil), evil)).pipe(unwrap(), toArray())), /evil\.tar: entry "a\/\.\.\/\.\.\/escape\.txt" would be written outside its folder/);

  const whole = join(scratch, 'whole.tar');
  await pack([{ name: 'big.bin', bytes: new Uint8Array(50_000) }], whole);
  const cut = join(scratch, 'cut.tar');
  const { readFileSync } = await import('node:fs');
  writeFileSync(cut, readFileSync(whole).subarray(0, 20_000));
  await assert.rejects(lastValueFrom(source('tar', () => tarChunks(createReadStream(cut), cut)).pipe(unwrap(), toArray())), /cut\.tar: in entry "big\.bin": /);
});

test('members are found from their headers alone (long names included), and a read started at a member begins with it', async () => {
  const path = join(scratch, 'members.tar');
  const long = `${'deep/'.repeat(30)}file.bin`;
  const entries = [
    { name: 'first.bin', bytes: new Uint8Array(700).fill(1) },
    { name: long, bytes: new Uint8Array(1500).fill(2) },
    { name: 'last.bin', bytes: new Uint8Array(0) },
  ];
  await pack(entries, path);
  const bytes = readFileSync(path);
  let reads = 0;
  const all = await tarMembers(async (offset, length) => (reads++, bytes.subarray(offset, offset + length)), path);
  // The packer adds a folder entry (type 5) after the files.
  const members = all.filter((m) => m.type !== '5');
  assert.deepEqual(members.map((m) => [m.path, m.size]), entries.map((e) => [e.name, e.bytes.length]));
  // Headers only: a read or two per member, never its data.
  assert.ok(reads <= 2 * all.length + 1, `${reads} reads`);
  for (const [i, m] of members.entries()) {
    const first = await tarChunks(createReadStream(path, { start: m.offset }), path).next();
    assert.equal(first.value!.path, entries[i]!.name);
  }
});

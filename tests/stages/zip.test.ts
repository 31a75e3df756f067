/**
 * Zip integrity on real archives (written by Python's zipfile, an independent implementation):
 * the entries read back exactly; a flipped byte, an archive cut at an entry boundary and an entry
 * that the directory does not list each fail, naming the file and the entry.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readZipDirectory, zipEntries } from '../../stages/io/zip.ts';
import { Random } from '../../stages/random.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-zip-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const random = Random.fromKey('zip');
// Compressible and incompressible entries, stored and deflated.
const files: Record<string, Buffer> = {
  'a/one.bin': Buffer.from(Uint8Array.from({ length: 50_000 }, () => random.int(0, 255))),
  'a/two.txt': Buffer.from('frames '.repeat(5000)),
  'three.bin': Buffer.from(Uint8Array.from({ length: 20_000 }, () => random.int(0, 3))),
};

/** A zip written by Python's zipfile; `stored` entries are not compressed. */
function pythonZip(path: string, stored: boolean): void {
  const folder = mkdtempSync(join(scratch, 'src-'));
  for (const [name, bytes] of Object.entries(files)) {
    execFileSync('mkdir', ['-p', join(folder, name, '..')]);
    writeFileSync(join(folder, name), bytes);
  }
  const script = `import zipfile, sys
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.${stored ? 'ZIP_STORED' : 'ZIP_DEFLATED'}) as z:
    for name in sys.argv[3:]:
        z.write(sys.argv[2] + '/' + name, name)`;
  execFileSync('python3', ['-c', script, path, folder, ...Object.keys(files)]);
}

async function readAll(path: string): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for await (const e of zipEntries(path)) out[e.path] = Buffer.from(e.bytes);
  return out;
}

test('entries of a deflated and of a stored zip read back exactly, with the directory they are checked against', async () => {
  for (const stored of [false, true]) {
    const path = join(scratch, `whole-${stored}.zip`);
    pythonZip(path, stored);
    assert.deepEqual(await readAll(path), files);
    assert.deepEqual([...readZipDirectory(path).keys()].sort(), Object.keys(files).sort());
  }
});

test('one flipped byte inside an entry fails, naming the file and the entry', async () => {
  for (const stored of [false, true]) {
    const path = join(scratch, `flipped-${stored}.zip`);
    pythonZip(path, stored);
    const bytes = readFileSync(path);
    // Inside three.bin's data: its local header is found by name.
    const at = bytes.indexOf('three.bin') + 'three.bin'.length + 100;
    bytes[at] = bytes[at]! ^ 0x55;
    writeFileSync(path, bytes);
    await assert.rejects(readAll(path), new RegExp(`flipped-${stored}\\.zip: entry "three\\.bin"`));
  }
});

test('an archive cut at an entry boundary, or anywhere, is refused as incomplete', async () => {
  const path = join(scratch, 'cut.zip');
  pythonZip(path, false);
  const bytes = readFileSync(path);
  // The local header of the second entry: everything before it is a valid-looking zip of one entry.
  const second = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x03, 0x04]), 4);
  writeFileSync(path, bytes.subarray(0, second));
  await assert.rejects(readAll(path), /cut\.zip: not a complete zip \(no end-of-central-directory record/);
  writeFileSync(path, bytes.subarray(0, bytes.length - 10));
  await assert.rejects(readAll(path), /cut\.zip: not a complete zip/);
});

test('an entry the stream holds but the central directory does not list is an error', async () => {
  const path = join(scratch, 'missing.zip');
  pythonZip(path, true);
  const bytes = readFileSync(path);
  // Rename the last entry's local header so the streaming reader sees another name.
  const local = bytes.indexOf('three.bin');
  bytes.write('three.bix', local);
  writeFileSync(path, bytes);
  await assert.rejects(readAll(path), /missing\.zip: entry "three\.bix" is not in the zip's central directory/);
});

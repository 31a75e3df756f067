/**
 * The direct Arrow route (pipeline/arrow-direct.ts) gives the same frame batches as Arrow's public
 * constructors: the same Arrow IPC bytes for batches of uint8 and float32 clips, ASCII and
 * non-ASCII ids, with and without masks, built in this process (direct) and in a child process
 * with ST_INPAINT_ARROW=public. And the installed Arrow still keeps the state the direct route
 * relies on, so it is the route taken.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ARROW_ROUTE } from '../../pipeline/arrow-direct.ts';

const HERE = fileURLToPath(import.meta.url);

/** Arrow IPC of a few frame batches, base64, as this process's route builds them. */
async function batchesIpc(): Promise<string> {
  const arrow = await import('apache-arrow');
  const { FrameBatchPool, encodeFrameBatch } = await import('../../pipeline/frame-batch.ts');
  const pool = new FrameBatchPool();
  const u8 = { shape: { frames: 2, height: 3, width: 4, channels: 1 }, pixelType: 'uint8', range: [0, 255] } as const;
  const f32 = { shape: { frames: 2, height: 2, width: 2, channels: 3 }, pixelType: 'float32', range: [-1, 1] } as const;
  const batches = [
    encodeFrameBatch(u8, [0, 1, 2].map((k) => ({ id: `clip-${k}`, frames: Uint8Array.from({ length: 24 }, (_, i) => (i * 7 + k) & 255), ...(k === 1 && { mask: Uint8Array.from({ length: 24 }, (_, i) => i % 2), seed: 5n, process: 'raindrops' }) }))),
    encodeFrameBatch(u8, [{ id: 'caméra-é', frames: new Uint8Array(24).fill(9) }], pool),
    encodeFrameBatch(f32, [{ id: 'sst@2019', frames: Float32Array.from({ length: 24 }, (_, i) => i / 24 - 0.5), process: 'clouds' }, { id: 'sst@2020', frames: new Float32Array(24), process: 'clouds' }], pool),
  ];
  return batches.map((b) => Buffer.from(arrow.tableToIPC(new arrow.Table(b), 'stream')).toString('base64')).join('\n');
}

if (process.env['ST_INPAINT_ARROW_CHILD']) {
  process.stdout.write(`${ARROW_ROUTE}\n${await batchesIpc()}`);
} else {
  test('the direct route is taken with the installed Arrow, and gives the public route\'s batches byte for byte', async () => {
    assert.equal(ARROW_ROUTE, 'direct');
    const direct = await batchesIpc();
    const viaPublic = execFileSync(process.execPath, ['--import', 'tsx', HERE], { encoding: 'utf8', env: { ...process.env, ST_INPAINT_ARROW: 'public', ST_INPAINT_ARROW_CHILD: '1', NODE_TEST_CONTEXT: '' } });
    const [route, ...batches] = viaPublic.split('\n');
    assert.equal(route, 'public');
    assert.equal(batches.length, 3);
    assert.equal(direct, batches.join('\n'));
  });
}

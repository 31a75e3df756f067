/**
 * SST from NetCDF-4 fixtures written here (packed int16, land as _FillValue, chunked and
 * compressed): 24-hour (here 4-hour) sequences cut in time order, split by date (train, the last
 * N before the test date as val, test after), centred crop at one depth, normalised per sequence
 * against an independent float64 computation from the generating function; land is 0; peek; bad
 * files, variables and crops are named.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import { main } from '../../cli/main.ts';
import { findDataset, type DatasetClip } from '../../datasets/index.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { cfTimes } from '../../stages/decode/netcdf.ts';
import { OFFSET, SCALE, packed, writeSstFixture } from '../fixtures/netcdf.ts';

const scratch = mkdtempSync(join(tmpdir(), 'st-inpaint-sst-'));
const folder = join(scratch, 'sst');
after(() => rmSync(scratch, { recursive: true, force: true }));

// Land in the top-left corner of the train region; a warm eddy that moves with time; depth 1 is colder.
const train = { start: new Date(Date.UTC(2018, 11, 31, 0)), times: 14, depths: 2, height: 6, width: 7, celsius: (t: number, d: number, y: number, x: number) => (y + x < 3 ? NaN : 24 - 3 * d + 0.1 * y + 0.05 * x * t + Math.sin(t + y)) };
const testRegion = { start: new Date(Date.UTC(2019, 0, 1, 0)), times: 8, depths: 1, height: 5, width: 5, celsius: (t: number, _d: number, y: number, x: number) => 26 + 0.2 * x - 0.1 * y + 0.3 * t };

before(async () => {
  mkdirSync(folder);
  await writeSstFixture(join(folder, 'a-2018.nc'), train);
  await writeSstFixture(join(folder, 'b-2019.nc'), testRegion);
});

/** Consecutive hours, back to back, every test sequence, unless a test says otherwise. */
const CONSECUTIVE = { interval: 1, stride: 4, 'test-sequences': 0 };
const open = (options: Record<string, unknown>, location = folder): Promise<DatasetClip[]> => lastValueFrom(findDataset('sst').open({ ...CONSECUTIVE, ...options }, location).clips.pipe(unwrap(), toArray()));

/** What the dataset must give for a sequence: unpacked values, float64 normalisation, land 0. */
function expected(f: typeof train, start: number, T: number, S: number, depth: number, interval = 1): Float64Array {
  const y0 = Math.floor((f.height - S) / 2);
  const x0 = Math.floor((f.width - S) / 2);
  const values: number[] = [];
  for (let k = 0, t = start; k < T; k++, t += interval) for (let y = y0; y < y0 + S; y++) for (let x = x0; x < x0 + S; x++) {
    const p = packed(f.celsius(t, depth, y, x));
    values.push(p === -32767 ? NaN : p * Math.fround(SCALE) + OFFSET);
  }
  const sea = values.filter((v) => !Number.isNaN(v));
  const mean = sea.reduce((a, v) => a + v, 0) / sea.length;
  const std = Math.sqrt(sea.reduce((a, v) => a + (v - mean) ** 2, 0) / sea.length);
  return Float64Array.from(values, (v) => (Number.isNaN(v) ? 0 : Math.max(-1, Math.min(1, (v - mean) / (3 * std)))));
}

test('sequences in time order, split by date, cropped at one depth and normalised; land is 0', async () => {
  const clips = await open({ frames: 4, size: 4, 'val-sequences': 1 });
  assert.deepEqual(
    clips.map((c) => [c.id, c.split]),
    [
      ['a-2018.nc@2018-12-31T00', 'train'],
      ['a-2018.nc@2018-12-31T04', 'train'],
      ['a-2018.nc@2018-12-31T08', 'val'],
      ['b-2019.nc@2019-01-01T00', 'test'],
      ['b-2019.nc@2019-01-01T04', 'test'],
    ],
  );
  const byId = new Map(clips.map((c) => [c.id, c.frames]));
  // Depth 1 of the train file alone (the test file has one level: asking it for depth 1 fails, below).
  const deeper = new Map((await open({ frames: 4, size: 4, depth: 1 }, join(folder, 'a-2018.nc'))).map((c) => [c.id, c.frames]));
  for (const [id, f, start, depth] of [['a-2018.nc@2018-12-31T04', train, 4, 0], ['a-2018.nc@2018-12-31T04', train, 4, 1], ['b-2019.nc@2019-01-01T04', testRegion, 4, 0]] as const) {
    const got = (depth === 1 ? deeper : byId).get(id)!;
    const want = expected(f as typeof train, start, 4, 4, depth);
    assert.equal(got.length, want.length);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-5, `${id} value ${i}: ${got[i]} for ${want[i]}`);
  }
  // The crop's corner cell (row 1, column 1 of the 6×7 grid) is land in the train file: exactly 0.
  assert.equal(byId.get('a-2018.nc@2018-12-31T00')![0], 0);
  assert.deepEqual((await open({ frames: 4, size: 4, 'val-sequences': 1, split: 'val' })).map((c) => c.id), ['a-2018.nc@2018-12-31T08']);
});

test('each clip carries its °C per normalised unit (3·std): frames × scale + mean gives back the temperatures', async () => {
  const [clip] = (await open({ frames: 4, size: 4, 'val-sequences': 1, split: 'test' }));
  const values: number[] = [];
  for (let t = 0; t < 4; t++) for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) values.push(packed(testRegion.celsius(t, 0, y, x)) * Math.fround(SCALE) + OFFSET);
  const mean = values.reduce((a, v) => a + v, 0) / values.length;
  const std = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
  assert.equal(clip!.physical!.unit, '°C');
  assert.ok(Math.abs(clip!.physical!.perUnit - 3 * std) < 1e-5, `${clip!.physical!.perUnit} for ${3 * std}`);
  clip!.frames.forEach((v, i) => assert.ok(Math.abs(v * clip!.physical!.perUnit + mean - values[i]!) < 1e-4, `cell ${i}`));
});

test('parts (ranges of the split\'s sequences in time order, as workers take them) give, one after the other, the whole read', async () => {
  for (const options of [{ frames: 4, size: 4, 'val-sequences': 1 }, { frames: 4, size: 4, 'val-sequences': 1, split: 'train' }]) {
    const whole = await open(options);
    const parts = await findDataset('sst').parts!({ ...CONSECUTIVE, ...options }, folder, 1);
    assert.equal(parts.length, whole.length, JSON.stringify(parts));
    const joined = [];
    for (const part of parts) joined.push(...(await open({ ...options, ...part })));
    assert.deepEqual(joined.map((c) => [c.id, c.split, [...c.frames]]), whole.map((c) => [c.id, c.split, [...c.frames]]));
  }
});

test('CF time units and peek', async () => {
  assert.deepEqual(cfTimes([0, 36], 'hours since 2018-01-01 00:00:00', 'x').map((d) => d.toISOString()), ['2018-01-01T00:00:00.000Z', '2018-01-02T12:00:00.000Z']);
  assert.deepEqual(cfTimes([1], 'days since 1950-1-1', 'x').map((d) => d.toISOString()), ['1950-01-02T00:00:00.000Z']);
  assert.throws(() => cfTimes([1], 'fortnights since 2000-01-01', 'f.nc: time'), /f.nc: time: time units "fortnights since 2000-01-01"/);
  const out: string[] = [];
  assert.equal(await main(['peek', 'sst', '--source', join(folder, 'b-2019.nc'), '--dataset-option', 'frames=4', '--dataset-option', 'size=4', '--dataset-option', 'interval=1', '--json'], { out: (l) => out.push(l), err: () => {} }), 0);
  const first = JSON.parse(out[0]!) as { id: string; frames: number; height: number; channels: number; split: string };
  assert.deepEqual([first.id, first.frames, first.height, first.channels, first.split], ['b-2019.nc@2019-01-01T00', 4, 4, 1, 'test']);
});

test('bad files, variables, depths and crops are named', async () => {
  const junk = join(scratch, 'junk.nc');
  writeFileSync(junk, 'CDF\x01 classic netCDF-3, not HDF5');
  await assert.rejects(open({}, junk), /junk\.nc: a NetCDF-3 \(classic\) file; st-inpaint reads NetCDF-4/);
  writeFileSync(junk, 'just text');
  await assert.rejects(open({}, junk), /junk\.nc: not a NetCDF-4 \/ HDF5 file/);
  await assert.rejects(open({ frames: 4, size: 4, variable: 'so' }), /a-2018\.nc: no variable "so" \(variables: .*thetao/);
  await assert.rejects(open({ frames: 4, size: 6 }), /b-2019\.nc: the grid is 5×5, smaller than the 6×6 crop/);
  await assert.rejects(open({ frames: 4, size: 4, depth: 1, split: 'test' }), /b-2019\.nc: depth index 1 out of 1 levels/);
  assert.throws(() => findDataset('sst').open({}, join(scratch, 'nowhere')), /--source .*nowhere: no such file or folder/);
});

test("the authors' sequences: every interval-th hour, a new one every stride hours (overlapping), the first N from test-from as the test split", async () => {
  // 14 hours of 2018: T = 3 frames 4 hours apart span 9 hours; one starts every 2 hours: at 0, 2, 4.
  const clips = await open({ frames: 3, size: 4, interval: 4, stride: 2, 'val-sequences': 1, 'test-sequences': 0 });
  assert.deepEqual(
    clips.map((c) => [c.id, c.split]),
    [
      ['a-2018.nc@2018-12-31T00', 'train'],
      ['a-2018.nc@2018-12-31T02', 'train'],
      ['a-2018.nc@2018-12-31T04', 'val'],
      // 8 hours of 2019: none spans 9.
    ],
  );
  const got = clips[1]!.frames;
  const want = expected(train, 2, 3, 4, 0, 4);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-5, `value ${i}: ${got[i]} for ${want[i]}`);
  // The test split is the first test-sequences from test-from (2019: consecutive hours, one every 2).
  const test = await open({ frames: 2, size: 4, interval: 1, stride: 2, 'test-sequences': 3, split: 'test' });
  assert.deepEqual(test.map((c) => c.id), ['b-2019.nc@2019-01-01T00', 'b-2019.nc@2019-01-01T02', 'b-2019.nc@2019-01-01T04']);
  // The defaults are the authors': 6-hour frames, a sequence a day, 60 test sequences.
  const defaults = findDataset('sst').options;
  assert.deepEqual([defaults['interval']!.default, defaults['stride']!.default, defaults['test-sequences']!.default, defaults['val-sequences']!.default], [6, 24, 60, 66]);
});

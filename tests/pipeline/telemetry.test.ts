/** Telemetry and its display: counts, bytes, time blocked, skipped errors, plain progress lines. */
import { losing } from '../../pipeline/errors.ts';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import { map } from '../../pipeline/operators/map.ts';
import { mapAsync } from '../../pipeline/operators/map-async.ts';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { formatLine, formatStats, showProgress } from '../../pipeline/progress.ts';
import { Telemetry, byteSize, metered, type TelemetryEvent } from '../../pipeline/telemetry.ts';

describe('telemetry', () => {
  it('counts items and bytes, high water and time blocked behind a slow consumer', async () => {
    const telemetry = new Telemetry();
    const graph = source('chunks', () => Array.from({ length: 20 }, () => new Uint8Array(1000)), { capacity: 2 }).pipe(
      mapAsync('slow', (b: Uint8Array) => sleep(5).then(() => b.length)),
      unwrap(),
    );
    await lastValueFrom(metered(telemetry, graph).pipe(toArray()));
    const [chunks, slow] = telemetry.snapshot();
    assert.equal(chunks?.stage, 'chunks');
    assert.equal(chunks?.items, 20);
    assert.equal(chunks?.bytes, 20_000);
    assert.equal(chunks?.highWater, 2);
    assert.equal(chunks?.done, true);
    // The source waited for the consumer most of the time: ~18 of 20 items × 5 ms.
    assert.ok(chunks!.blockedMs > 50, `blocked ${chunks!.blockedMs} ms`);
    assert.equal(slow?.items, 20);
  });

  it('reports skipped elements as events and counts the items they lost', async () => {
    const telemetry = new Telemetry();
    const events: TelemetryEvent[] = [];
    telemetry.events$.subscribe((e) => events.push(e));
    const graph = source('ids', () => [{ id: 'a' }, { id: 'b' }, { id: 'c' }, { id: 'd' }]).pipe(
      map(
        'check',
        (x: { id: string }) => {
          if (x.id === 'b') throw new Error('broken header');
          // An element that stands for several items says how many skipping it loses.
          if (x.id === 'd') throw losing(new Error('corrupt video'), 3);
          return x.id;
        },
        { onError: 'skip' },
      ),
      unwrap(),
    );
    assert.deepEqual(await lastValueFrom(metered(telemetry, graph).pipe(toArray())), ['a', 'c']);
    assert.deepEqual(events, [
      { stage: 'check', kind: 'skipped', message: 'stage "check", clip "b": broken header', count: 1 },
      { stage: 'check', kind: 'skipped', message: 'stage "check", clip "d": corrupt video (3 clips lost)', count: 3 },
    ]);
    assert.equal(telemetry.snapshot().find((s) => s.stage === 'check')?.skipped, 4);
  });

  it('names repeated stage names apart', async () => {
    const telemetry = new Telemetry();
    const graph = source('n', () => [1]).pipe(map('inc', (x: number) => x + 1), map('inc', (x: number) => x + 1), unwrap());
    await lastValueFrom(metered(telemetry, graph));
    assert.deepEqual(telemetry.snapshot().map((s) => s.stage).sort(), ['inc', 'inc#2', 'n']);
  });

  it('sizes typed arrays, objects holding them, and Arrow-like batches', () => {
    assert.equal(byteSize(new Float32Array(3)), 12);
    assert.equal(byteSize({ id: 'x', frames: new Uint8Array(10), mask: new Uint8Array(5) }), 15);
    assert.equal(byteSize({ data: { byteLength: 99 } }), 99);
    assert.equal(byteSize('text'), 0);
  });
});

describe('progress display', () => {
  it('writes plain periodic lines when not on a terminal, and skipped-element notes', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    }) as unknown as NodeJS.WriteStream;
    const telemetry = new Telemetry();
    const display = showProgress(telemetry, { stream, lineIntervalMs: 20 });
    const graph = source('ticks', () => Array.from({ length: 10 }, (_, i) => i)).pipe(
      mapAsync('slow', (x: number) => sleep(10).then(() => x)),
      map('odd-only', (x: number) => {
        if (x % 2 === 0) throw new Error(`even ${x}`);
        return x;
      }, { onError: 'skip' }),
      unwrap(),
    );
    await lastValueFrom(metered(telemetry, graph).pipe(toArray()));
    display.unsubscribe();
    assert.ok(lines.some((l) => /^\[\d+s\] ticks \d+ it .* \| slow \d+ it/.test(l)), lines.join('\n'));
    assert.ok(lines.includes('odd-only: stage "odd-only", element #0: even 0'), lines.join('\n'));
    assert.ok(!lines.some((l) => l.includes('\x1b[')), 'no terminal escapes in plain output');
  });

  it('formats a table with one row per stage', () => {
    const stats = [{ stage: 'decode', items: 1500, bytes: 3e9, itemsPerSec: 250, bytesPerSec: 5e8, inFlight: 3, capacity: 4, highWater: 4, blockedMs: 500, skipped: 2, elapsedMs: 1000, done: false }];
    const [header, row] = formatStats(stats);
    assert.match(header!, /^stage\s+items\s+items\/s\s+bytes\/s\s+queue\s+high\s+blocked\s+skipped$/);
    assert.match(row!, /^decode\s+1\.5k\s+250\s+500MB\s+3\/4\s+4\s+50%\s+2$/);
    assert.equal(formatLine(stats, 12_400), '[12s] decode 1.5k it 250/s 500MB/s q 3/4 skipped 2');
  });
});

/** The embedded synthetic set: deterministic by seed, rich enough to need motion and appearance, split 90/5/5. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import { checkSyntheticOptions, syntheticClip, syntheticSource, syntheticSplit } from '../../datasets/synthetic.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';

const o = checkSyntheticOptions({ frames: 12, size: 32, channels: 3 });

function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

describe('synthetic dataset', () => {
  it('is a pure function of (seed, index): same bytes again, other bytes for another index or seed', () => {
    const a = syntheticClip(o, 3);
    assert.deepEqual(syntheticClip(o, 3).frames, a.frames);
    assert.notDeepEqual(syntheticClip(o, 4).frames, a.frames);
    assert.notDeepEqual(syntheticClip({ ...o, seed: 2 }, 3).frames, a.frames);
    assert.equal(a.frames.length, 12 * 32 * 32 * 3);
    assert.equal(a.id, 'synthetic-1-3');
  });

  it('moves: consecutive frames differ, yet are closer to each other than to frames far apart', () => {
    const clip = syntheticClip({ ...o, frames: 24 }, 0);
    const size = 32 * 32 * 3;
    const frame = (t: number): ArrayLike<number> => clip.frames.subarray(t * size, (t + 1) * size);
    let near = 0;
    let far = 0;
    for (let t = 0; t < 12; t++) {
      near += meanAbsDiff(frame(t), frame(t + 1));
      far += meanAbsDiff(frame(t), frame(t + 12));
    }
    assert.ok(near > 0.5 * 12, `frames change (${near / 12} per pixel)`);
    assert.ok(far > 1.5 * near, `far ${far / 12} vs near ${near / 12}`);
  });

  it('has texture, not flat colour: spread of values inside each frame, and colour in colour clips', () => {
    const clip = syntheticClip(o, 1);
    const values = Array.from(clip.frames.subarray(0, 32 * 32 * 3));
    const mean = values.reduce((a, b) => a + b) / values.length;
    const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    assert.ok(std > 20, `std ${std}`);
    let chroma = 0;
    for (let p = 0; p < 32 * 32; p++) chroma += Math.abs(clip.frames[3 * p]! - clip.frames[3 * p + 1]!);
    assert.ok(chroma / (32 * 32) > 5, 'red and green differ');
    const grey = syntheticClip({ ...o, channels: 1 }, 1);
    assert.equal(grey.frames.length, 12 * 32 * 32);
  });

  it('splits about 90/5/5 and streams only the split asked for', async () => {
    const counts = { train: 0, val: 0, test: 0 };
    for (let i = 0; i < 20_000; i++) counts[syntheticSplit(1, i)] += 1;
    assert.ok(Math.abs(counts.train / 20_000 - 0.9) < 0.01 && Math.abs(counts.test / 20_000 - 0.05) < 0.01, JSON.stringify(counts));
    const test = await lastValueFrom(syntheticSource(checkSyntheticOptions({ clips: 200, size: 8, frames: 2, split: 'test' })).pipe(unwrap(), toArray()));
    const expected = Array.from({ length: 200 }, (_, i) => i).filter((i) => syntheticSplit(1, i) === 'test');
    assert.deepEqual(test.map((c) => c.id), expected.map((i) => `synthetic-1-${i}`));
    assert.ok(test.every((c) => c.split === 'test'));
  });

  it('refuses 2 channels and other bad options with one line naming them', () => {
    assert.throws(() => checkSyntheticOptions({ channels: 2 }), /^UsageError: dataset "synthetic": --channels must be 1 \(grey\) or 3 \(colour\), got 2$/);
    assert.throws(() => checkSyntheticOptions({ size: 4 }), /--size must be ≥ 8, got 4/);
  });
});

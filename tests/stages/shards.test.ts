/** Exported datasets: Arrow shards per set and split, read back exactly, and refused when incomplete. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import { exportDataset } from '../../cli/commands.ts';
import { checkSyntheticOptions, syntheticClip } from '../../datasets/synthetic.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { applyMask, chooseOcclusion, clipRandom } from '../../stages/occlusion/index.ts';
import { readManifest, readShards } from '../../stages/sinks/shards.ts';

const dir = mkdtempSync(join(tmpdir(), 'st-shards-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const quiet = { out: () => {}, err: () => {} };

describe('export and shards', () => {
  it('writes clean and observed sets per split, and reads back the exact clips and masks', async () => {
    const out = join(dir, 'export');
    const lines: string[] = [];
    await exportDataset(
      { dataset: 'synthetic', out, seed: 4, shardClips: 7, runs: join(dir, 'runs'), datasetOptions: ['clips=60', 'size=12', 'frames=3'], occlusion: 'remove-pixel', occlusionOptions: ['p=0.5'] },
      { out: (l) => lines.push(l), err: () => {} },
    );
    const manifest = readManifest(out);
    assert.deepEqual(manifest.sets, ['clean', 'remove-pixel']);
    const o = checkSyntheticOptions({ clips: 60, size: 12, frames: 3 });
    const expected = Array.from({ length: 60 }, (_, i) => syntheticClip(o, i));
    const bySplit = (split: string) => expected.filter((c) => c.split === split);
    assert.equal(manifest.splits.train, bySplit('train').length);
    assert.match(lines.at(-1)!, /shard files in sets clean, remove-pixel/);
    // ceil(n / 7) files per split and set.
    const files = readdirSync(join(out, 'clean')).length;
    assert.equal(files, ['train', 'val', 'test'].reduce((s, k) => s + Math.ceil(bySplit(k).length / 7), 0));

    const choice = chooseOcclusion('remove-pixel', { p: 0.5 });
    const drawer = await choice.process.prepare(choice.options, { frames: 3, height: 12, width: 12 });
    for (const split of ['train', 'val', 'test']) {
      const clean = await lastValueFrom(readShards(out, 'clean', split).clips.pipe(unwrap(), toArray()));
      const seen = await lastValueFrom(readShards(out, 'remove-pixel', split).clips.pipe(unwrap(), toArray()));
      assert.deepEqual(clean.map((c) => c.id), bySplit(split).map((c) => c.id));
      assert.deepEqual(seen.map((c) => c.id), bySplit(split).map((c) => c.id), 'rows aligned with clean');
      clean.forEach((c, i) => {
        const truth = bySplit(split)[i]!;
        assert.deepEqual(c.frames, truth.frames);
        const mask = drawer.draw(clipRandom(4, truth.id, 'remove-pixel', choice.options));
        assert.deepEqual(seen[i]!.mask, mask);
        assert.deepEqual(seen[i]!.frames, applyMask(truth.frames, mask, 1, 0));
        assert.equal(seen[i]!.process, 'remove-pixel');
        assert.equal(seen[i]!.split, split);
      });
    }
    await assert.rejects(
      exportDataset({ dataset: 'synthetic', out, seed: 0, shardClips: 8, runs: join(dir, 'runs') }, quiet),
      /--out .*export already holds an export \(manifest\.json\)/,
    );
  });

  it('refuses a folder without a manifest (an interrupted export) and an unknown set, naming them', () => {
    const partial = join(dir, 'partial');
    mkdirSync(join(partial, 'clean'), { recursive: true });
    assert.throws(() => readShards(partial), /partial: no manifest\.json \(not an export, or an interrupted one\)/);
    assert.throws(() => readShards(join(dir, 'nowhere')), /nowhere does not exist/);
    assert.throws(() => readShards(join(dir, 'export'), 'raindrops'), /no set "raindrops" \(it has clean, remove-pixel\)/);
  });
});

/**
 * Occlusion processes: the statistical and geometric properties method.md §5 states, exact fill
 * values, untouched visible pixels, determinism by (seed, clip, options), option checks, and the
 * fresh-mask sampler's saved state.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import sharp from 'sharp';
import { UsageError } from '../../pipeline/errors.ts';
import type { Clip, FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { Telemetry, metered } from '../../pipeline/telemetry.ts';
import { lwpWindow } from '../../stages/occlusion/clouds.ts';
import {
  MaskSampler,
  applyMask,
  chooseOcclusion,
  clipRandom,
  occludedFraction,
  type MaskShape,
} from '../../stages/occlusion/index.ts';
import { barLeft, planBar } from '../../stages/occlusion/moving-vertical-bar.ts';
import { occlude } from '../../stages/occlusion/occlude.ts';
import { planRaindrops } from '../../stages/occlusion/raindrops.ts';
import { Random } from '../../stages/random.ts';

const dir = mkdtempSync(join(tmpdir(), 'st-occlusion-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function maskOf(name: string, shape: MaskShape, random: Random, given: Record<string, unknown> = {}): Promise<Uint8Array> {
  const { process, options } = chooseOcclusion(name, given);
  return (await process.prepare(options, shape)).draw(random);
}

const at = (mask: Uint8Array, shape: MaskShape, t: number, y: number, x: number): number => mask[(t * shape.height + y) * shape.width + x]!;

describe('remove-pixel', () => {
  it('hides p ± 0.01 of 10⁶ pixels, for several p', async () => {
    const shape = { frames: 100, height: 100, width: 100 };
    for (const p of [0.6, 0.3, 0.9]) {
      const fraction = occludedFraction(await maskOf('remove-pixel', shape, Random.fromKey('rp', p), { p }));
      assert.ok(Math.abs(fraction - p) < 0.01, `p = ${p}: hid ${fraction}`);
    }
  });

  it('redraws every frame independently: about p² of pixels hidden in two consecutive frames', async () => {
    const shape = { frames: 2, height: 300, width: 300 };
    const mask = await maskOf('remove-pixel', shape, Random.fromKey('rp-pairs'));
    let both = 0;
    const n = shape.height * shape.width;
    for (let i = 0; i < n; i++) both += mask[i] === 0 && mask[n + i] === 0 ? 1 : 0;
    assert.ok(Math.abs(both / n - 0.36) < 0.01, `${both / n}`);
  });

  it('hides every channel of a hidden pixel together, with c = 0 exactly', async () => {
    const shape = { frames: 3, height: 10, width: 10 };
    const mask = await maskOf('remove-pixel', shape, Random.fromKey('rp-ch'));
    const clean = Uint8Array.from({ length: 3 * 10 * 10 * 3 }, (_, i) => 1 + (i % 250));
    const y = applyMask(clean, mask, 3, 0);
    for (let p = 0; p < mask.length; p++) {
      for (let c = 0; c < 3; c++) assert.equal(y[3 * p + c], mask[p] ? clean[3 * p + c] : 0);
    }
  });
});

describe('raindrops', () => {
  const shape = { frames: 40, height: 32, width: 32 };

  it('each drop keeps its column and width and moves down by its speed every frame, re-entering at the top', async () => {
    for (let k = 0; k < 20; k++) {
      const options = chooseOcclusion('raindrops', { drops: 1, width: 4 }).options;
      const [drop] = planRaindrops(shape, options as never, Random.fromKey('drop', k));
      const mask = await maskOf('raindrops', shape, Random.fromKey('drop', k), { drops: 1, width: 4 });
      assert.equal(drop!.width, 2, 'width 4 at 64 px is 2 px at 32 px');
      const period = shape.height + drop!.length;
      let wrapped = false;
      for (let t = 0; t < shape.frames; t++) {
        const bottom = (drop!.start + t * drop!.speed) % period;
        if (t > 0 && bottom < (drop!.start + (t - 1) * drop!.speed) % period) wrapped = true;
        for (let y = 0; y < shape.height; y++) {
          for (let x = 0; x < shape.width; x++) {
            const hidden: boolean = x >= drop!.x && x < drop!.x + drop!.width && y >= bottom - drop!.length && y < bottom;
            assert.equal(at(mask, shape, t, y, x), hidden ? 0 : 1, `clip ${k}, frame ${t}, (${y}, ${x})`);
          }
        }
      }
      // 40 frames at ≥ 1 px per frame over a period of at most 2·32 rows: most drops wrap.
      if (drop!.speed * shape.frames > 2 * period) assert.ok(wrapped, `drop ${k} should have wrapped`);
    }
  });

  it('draws lengths U(0, 1)·H and speeds around 0.07·H per frame', () => {
    const big = { frames: 1, height: 200, width: 64 };
    const options = chooseOcclusion('raindrops', { drops: 4000 }).options;
    const drops = planRaindrops(big, options as never, Random.fromKey('many'));
    const meanLength = drops.reduce((s, d) => s + d.length, 0) / drops.length;
    const meanSpeed = drops.reduce((s, d) => s + d.speed, 0) / drops.length;
    assert.ok(Math.abs(meanLength - 100) < 4, `mean length ${meanLength}`);
    assert.ok(Math.abs(meanSpeed - 14) < 0.5, `mean speed ${meanSpeed}`);
  });
});

describe('moving vertical bar', () => {
  const shape = { frames: 60, height: 8, width: 40 };

  it('keeps its width, spans the full height, moves at constant speed towards the centre and wraps', async () => {
    let sawWrap = false;
    for (let k = 0; k < 20; k++) {
      const options = chooseOcclusion('moving-vertical-bar').options;
      const bar = planBar(shape, options as never, Random.fromKey('bar', k));
      const mask = await maskOf('moving-vertical-bar', shape, Random.fromKey('bar', k));
      assert.ok(bar.width >= 0.1 * 40 - 0.5 && bar.width <= 0.5 * 40 + 0.5, `width ${bar.width}`);
      assert.ok(Math.abs(bar.speed) >= 1 && Math.abs(bar.speed) <= 2, `speed ${bar.speed}`);
      assert.equal(Math.sign(bar.speed), bar.start + bar.width / 2 < 20 ? 1 : -1, 'towards the centre');
      for (let t = 0; t < shape.frames; t++) {
        const hiddenColumns = Array.from({ length: 40 }, (_, x) => x).filter((x) => at(mask, shape, t, 0, x) === 0);
        assert.equal(hiddenColumns.length, bar.width, `frame ${t}`);
        for (let y = 1; y < shape.height; y++) for (let x = 0; x < 40; x++) assert.equal(at(mask, shape, t, y, x), at(mask, shape, t, 0, x));
        const left = barLeft(bar, 40, t);
        assert.equal(left, (((bar.start + t * bar.speed) % 40) + 40) % 40);
        assert.ok(hiddenColumns.includes(left) && hiddenColumns.includes((left + bar.width - 1) % 40));
        if (left + bar.width > 40) sawWrap = true;
      }
    }
    assert.ok(sawWrap, 'some bar crossed the border');
  });

  it('refuses a minimum width above the maximum when the options are given, before any mask is drawn', () => {
    assert.throws(() => chooseOcclusion('moving-vertical-bar', { 'min-width': 0.6, 'max-width': 0.3 }), /--min-width \(0.6\) must not exceed --max-width \(0.3\)/);
    assert.equal(chooseOcclusion('moving-vertical-bar', { 'min-width': 0.3, 'max-width': 0.3 }).options['min-width'], 0.3);
  });
});

describe('clouds', () => {
  it('procedural clouds hide the requested coverage of a clip and drift smoothly', async () => {
    const shape = { frames: 12, height: 48, width: 48 };
    for (const coverage of [0.2, 0.4, 0.7]) {
      const mask = await maskOf('clouds', shape, Random.fromKey('clouds', coverage), { coverage });
      assert.ok(Math.abs(occludedFraction(mask) - coverage) < 0.01, `coverage ${coverage}: ${occludedFraction(mask)}`);
      // Consecutive frames agree on most pixels (time-correlated), unlike independent masks.
      const n = 48 * 48;
      let same = 0;
      for (let i = 0; i < n; i++) same += mask[i] === mask[n + i] ? 1 : 0;
      assert.ok(same / n > 0.85, `frames 0 and 1 agree on ${same / n}`);
    }
  });

  it('thresholds a liquid-water-path .npy array: a random start, every step-th field, a random crop', async () => {
    const [steps, fh, fw] = [50, 20, 24];
    const values = Float32Array.from({ length: steps * fh * fw }, (_, i) => (i * 37) % 151);
    const path = join(dir, 'lwp.npy');
    writeFileSync(path, npy('<f4', [steps, fh, fw], new Uint8Array(values.buffer)));
    const shape = { frames: 4, height: 8, width: 10 };
    const given = { lwp: path, threshold: 70, step: 10 };
    const options = chooseOcclusion('clouds', given).options;
    const w = lwpWindow(options as never, shape, Random.fromKey('lwp'));
    const mask = await maskOf('clouds', shape, Random.fromKey('lwp'), given);
    for (let t = 0; t < 4; t++) {
      for (let y = 0; y < 8; y++) {
        for (let x = 0; x < 10; x++) {
          const v = values[((w.start + 10 * t) * fh + w.top + y) * fw + w.left + x]!;
          assert.equal(at(mask, shape, t, y, x), v > 70 ? 0 : 1);
        }
      }
    }
  });

  it("reads the field's units from its values: the same clouds from a field in kg/m² as from the same field in g/m², the threshold always in g/m²", async () => {
    const [steps, fh, fw] = [40, 10, 12];
    // Realistic liquid water paths: 0 – 300 g/m².
    const grams = Float32Array.from({ length: steps * fh * fw }, (_, i) => (i * 37) % 301);
    const kilograms = grams.map((v) => v / 1000);
    const [g, kg] = [join(dir, 'lwp-g.npy'), join(dir, 'lwp-kg.npy')];
    writeFileSync(g, npy('<f4', [steps, fh, fw], new Uint8Array(grams.buffer)));
    writeFileSync(kg, npy('<f4', [steps, fh, fw], new Uint8Array(kilograms.buffer)));
    const shape = { frames: 4, height: 8, width: 10 };
    const fromGrams = await maskOf('clouds', shape, Random.fromKey('units'), { lwp: g, step: 5 });
    assert.deepEqual(await maskOf('clouds', shape, Random.fromKey('units'), { lwp: kg, step: 5 }), fromGrams);
    // About 70/300 of the values are under the default 70 g/m²: the field is not all clear or all cloud.
    const visible = fromGrams.reduce((a, v) => a + v, 0) / fromGrams.length;
    assert.ok(visible > 0.15 && visible < 0.35, `visible share ${visible}`);
    // The assumption is stated; units= overrides it (read as g/m², the kg field hides nothing).
    const { process, options } = chooseOcclusion('clouds', { lwp: kg, step: 5 });
    assert.match((await process.prepare(options as never, shape)).note ?? '', /lwp-kg\.npy read as kg\/m² \(from its values; units= overrides\), hidden where LWP > 70 g\/m²/);
    const forced = await maskOf('clouds', shape, Random.fromKey('units'), { lwp: kg, step: 5, units: 'g/m2' });
    assert.ok(forced.every((v) => v === 1));
  });

  it('takes the array from a URL too: downloaded once into the cache, the same masks as from the file', async () => {
    const [steps, fh, fw] = [30, 12, 12];
    const values = Float32Array.from({ length: steps * fh * fw }, (_, i) => (i * 53) % 149);
    const body = npy('<f4', [steps, fh, fw], new Uint8Array(values.buffer));
    const path = join(dir, 'lwp-local.npy');
    writeFileSync(path, body);
    let requests = 0;
    const server = createServer((_req, res) => {
      requests += 1;
      res.writeHead(200, { 'Content-Length': body.length });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/files/lwp.npy`;
    const cache = process.env['ST_INPAINT_CACHE'];
    process.env['ST_INPAINT_CACHE'] = join(dir, 'cache');
    try {
      const shape = { frames: 2, height: 6, width: 6 };
      const fromFile = await maskOf('clouds', shape, Random.fromKey('u'), { lwp: path, step: 5 });
      assert.deepEqual(await maskOf('clouds', shape, Random.fromKey('u'), { lwp: url, step: 5 }), fromFile);
      assert.deepEqual(await maskOf('clouds', shape, Random.fromKey('u'), { lwp: url, step: 5 }), fromFile);
      assert.equal(requests, 1, 'the second use reads the cached copy');
    } finally {
      if (cache === undefined) delete process.env['ST_INPAINT_CACHE'];
      else process.env['ST_INPAINT_CACHE'] = cache;
      server.close();
    }
  });

  it('names the file and the problem when the array cannot serve the clip', async () => {
    const path = join(dir, 'short.npy');
    writeFileSync(path, npy('<f4', [5, 8, 8], new Uint8Array(5 * 8 * 8 * 4)));
    const { process, options } = chooseOcclusion('clouds', { lwp: path, step: 10 });
    await assert.rejects(async () => process.prepare(options, { frames: 4, height: 8, width: 8 }), new RegExp(`--lwp ${path} has 5 steps, 4 frames every 10 steps need 31`));
    const bad = join(dir, 'bad.npy');
    writeFileSync(bad, 'not numpy');
    const b = chooseOcclusion('clouds', { lwp: bad });
    await assert.rejects(async () => b.process.prepare(b.options, { frames: 1, height: 8, width: 8 }), /bad\.npy: not an \.npy file/);
  });
});

describe('mask-video (a folder of mask images)', () => {
  it('reads white as occluded, resizes to the clip, and takes consecutive frames', async () => {
    const folder = join(dir, 'masks');
    mkdirSync(folder);
    // Frame k: a white square whose left edge is at 2k (16×16 images, clip 8×8).
    for (let k = 0; k < 5; k++) {
      const img = new Uint8Array(16 * 16);
      for (let y = 4; y < 12; y++) for (let x = 2 * k; x < 2 * k + 4; x++) img[y * 16 + x] = 255;
      await sharp(img, { raw: { width: 16, height: 16, channels: 1 } }).png().toFile(join(folder, `m${k}.png`));
    }
    const shape = { frames: 3, height: 8, width: 8 };
    const mask = await maskOf('mask-video', shape, Random.fromKey('mv'), { path: folder });
    const start = Random.fromKey('mv').int(0, 2);
    for (let t = 0; t < 3; t++) {
      const k = start + t;
      for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) assert.equal(at(mask, shape, t, y, x), y >= 2 && y < 6 && x >= k && x < k + 2 ? 0 : 1, `t ${t} (${y}, ${x})`);
    }
    const inverted = await maskOf('mask-video', shape, Random.fromKey('mv'), { path: folder, invert: true });
    assert.ok(inverted.every((v, i) => v === 1 - mask[i]!));
  });

  it('says what is wrong with the path', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    // What can be known from the options is refused when they are given; what needs the files, when they are read.
    assert.throws(() => chooseOcclusion('mask-video', { path: '' }), /--path is required/);
    assert.throws(() => chooseOcclusion('mask-video', { path: join(dir, 'nowhere') }), /--path .*nowhere does not exist/);
    const { process, options } = chooseOcclusion('mask-video', { path: empty });
    await assert.rejects(async () => process.prepare(options, { frames: 1, height: 4, width: 4 }), /no mask images .* in .*empty/);
  });
});

describe('every process', () => {
  const names = ['raindrops', 'remove-pixel', 'moving-vertical-bar', 'clouds'];
  const shape = { frames: 6, height: 16, width: 16 };

  it('leaves visible pixels bit-identical and fills hidden ones with c exactly, in uint8 and float32', async () => {
    for (const name of names) {
      const { process } = chooseOcclusion(name);
      const mask = await maskOf(name, shape, Random.fromKey('fill', name));
      assert.ok(mask.includes(0) && mask.includes(1), `${name} hides some pixels and not all`);
      const u8 = Uint8Array.from({ length: mask.length * 3 }, (_, i) => (i * 7) % 256);
      const f32 = Float32Array.from({ length: mask.length * 3 }, (_, i) => Math.sin(i) * 0.999);
      const cU8 = process.fill === 1 ? 255 : 0;
      const cF32 = process.fill === 1 ? 1 : -1;
      const y8 = applyMask(u8, mask, 3, cU8);
      const y32 = applyMask(f32, mask, 3, cF32);
      for (let i = 0; i < u8.length; i++) {
        const visible = mask[Math.floor(i / 3)] === 1;
        assert.equal(y8[i], visible ? u8[i] : cU8);
        assert.ok(Object.is(y32[i], visible ? f32[i] : cF32), `${name} float32 value ${i}`);
      }
    }
  });

  it('gives the same mask for the same seed and clip, and another for another clip, seed or option', async () => {
    for (const name of names) {
      const { options } = chooseOcclusion(name);
      const a = await maskOf(name, shape, clipRandom(7, 'clip-a', name, options));
      const again = await maskOf(name, shape, clipRandom(7, 'clip-a', name, options));
      const otherClip = await maskOf(name, shape, clipRandom(7, 'clip-b', name, options));
      const otherSeed = await maskOf(name, shape, clipRandom(8, 'clip-a', name, options));
      assert.deepEqual(again, a, name);
      assert.notDeepEqual(otherClip, a, name);
      assert.notDeepEqual(otherSeed, a, name);
    }
    const o1 = chooseOcclusion('raindrops', { drops: 5 }).options;
    const o2 = chooseOcclusion('raindrops', { drops: 6 }).options;
    assert.notDeepEqual(clipRandom(7, 'c', 'raindrops', o1).state, clipRandom(7, 'c', 'raindrops', o2).state);
  });

  it('refuses out-of-range options with one line naming the option', () => {
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['raindrops', { width: 0 }, /^occlusion "raindrops": --width must be ≥ 1, got 0$/],
      ['raindrops', { drops: 2.5 }, /--drops must be an integer/],
      ['remove-pixel', { p: 1.5 }, /^occlusion "remove-pixel": --p must be ≤ 1, got 1.5$/],
      ['clouds', { coverage: 0 }, /--coverage must be ≥ 0.01/],
      ['raindrops', { size: 3 }, /occlusion "raindrops" has no option --size/],
    ];
    for (const [name, given, message] of cases) {
      assert.throws(() => chooseOcclusion(name, given), (err: Error) => err instanceof UsageError && message.test(err.message) && !err.message.includes('\n'));
    }
    assert.throws(() => chooseOcclusion('snow'), /unknown occlusion "snow" \(known: raindrops, remove-pixel, moving-vertical-bar, clouds, mask-video\)/);
  });
});

describe('fresh masks for re-occlusion', () => {
  const shape = { frames: 4, height: 8, width: 8 };

  it('continues exactly from a saved state, and differs from the observed masks', async () => {
    const { process, options } = chooseOcclusion('raindrops');
    const drawer = await process.prepare(options, shape);
    const sampler = new MaskSampler(drawer, shape, Random.fromKey(3, 'fresh-masks'));
    sampler.sample(2);
    const saved = sampler.state;
    const next = sampler.sample(3);
    assert.equal(next.length, 3 * 4 * 8 * 8);
    const restored = new MaskSampler(drawer, shape, Random.fromKey('anything'));
    restored.state = saved;
    assert.deepEqual(restored.sample(3), next);
    assert.notDeepEqual(next.subarray(0, 256), next.subarray(256, 512), 'masks of a batch differ');
    const observed = drawer.draw(clipRandom(3, 'clip-0', 'raindrops', options));
    assert.notDeepEqual(next.subarray(0, 256), observed);
  });
});

describe('occlude stage', () => {
  it('observes clips, records process and seed, ANDs an existing mask, and reports occluded fraction mean ± std', async () => {
    const spec: FrameBatchSpec = { shape: { frames: 4, height: 12, width: 12, channels: 1 }, pixelType: 'float32', range: [-1, 1] };
    const n = 4 * 12 * 12;
    const clips: Clip[] = Array.from({ length: 10 }, (_, i) => ({ id: `c${i}`, frames: new Float32Array(n).fill(-0.5) }));
    clips[3] = { ...clips[3]!, mask: new Uint8Array(n).fill(1).fill(0, 0, 10) };
    const choice = chooseOcclusion('raindrops', { drops: 4 });
    const telemetry = new Telemetry();
    const out = await lastValueFrom(metered(telemetry, source('clips', () => clips).pipe(occlude(choice, { seed: 5, spec }), unwrap(), toArray())));
    assert.equal(out.length, 10);
    const fractions: number[] = [];
    for (const [i, clip] of out.entries()) {
      assert.equal(clip.process, 'raindrops');
      assert.equal(clip.seed, 5n);
      const own = (await choice.process.prepare(choice.options, spec.shape)).draw(clipRandom(5, `c${i}`, 'raindrops', choice.options));
      for (let p = 0; p < n; p++) {
        assert.equal(clip.mask![p], own[p]! & (i === 3 && p < 10 ? 0 : 1));
        assert.equal(clip.frames[p], own[p] ? -0.5 : 1);
      }
      fractions.push(occludedFraction(clip.mask!));
    }
    const mean = fractions.reduce((a, b) => a + b) / 10;
    const std = Math.sqrt(fractions.reduce((a, b) => a + (b - mean) ** 2, 0) / 10);
    const stats = telemetry.snapshot().find((s) => s.stage === 'occlude-raindrops')!;
    assert.ok(Math.abs(stats.measures!.occluded!.mean - mean) < 1e-12);
    assert.ok(Math.abs(stats.measures!.occluded!.std - std) < 1e-12);
    assert.equal(stats.measures!.occluded!.count, 10);
  });
});

/** An .npy file, version 1.0, as numpy.save writes it: magic, header dict padded to 64 bytes, data. */
function npy(descr: string, shape: number[], data: Uint8Array): Buffer {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const prefix = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(prefix);
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), data]);
}

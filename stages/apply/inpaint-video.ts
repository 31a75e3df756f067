/**
 * `st-inpaint apply`: a trained generator fills the holes of a video of any length, in constant
 * memory. Frames stream from ffmpeg through the pipeline (credit-bounded source → windowing stage),
 * in windows of the model's T frames advancing by T/2; each window is scaled to the model's size,
 * filled, scaled back, and blended into its frames with weights that fall off towards the window's
 * borders (min(p + 1, T − p)), so no seam shows where windows meet. A frame is written as soon as
 * no later window covers it: visible pixels exactly as they came in, holes from the blend.
 *
 * Holes come from a mask video (white = hidden) or from an occlusion process drawn over the input
 * (which is then taken as clean: masked MAE and PSNR against it are reported).
 */
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { lastValueFrom } from 'rxjs';
import { selectBackend, describeSelection } from '../../pipeline/backend.ts';
import { latestCheckpoint, loadCheckpoint } from '../../pipeline/checkpoint.ts';
import { CancelledError, UsageError } from '../../pipeline/errors.ts';
import { mapAsync } from '../../pipeline/operators/map-async.ts';
import { source } from '../../pipeline/operators/source.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { GanTrainer, type TrainerState } from '../gan/trainer.ts';
import { chooseOcclusion } from '../occlusion/index.ts';
import { applyMask, clipRandom, fillValue, type MaskDrawer } from '../occlusion/process.ts';
import { Random } from '../random.ts';
import { FrameReader, VideoWriter, probeVideo } from '../io/video.ts';

export interface ApplyOptions {
  readonly checkpoint: string;
  readonly input: string;
  readonly output: string;
  /** A mask video of the input's size, white = hidden. */
  readonly mask?: string;
  /** Or an occlusion process drawn over a clean input. */
  readonly occlusion?: string;
  readonly occlusionOptions?: Readonly<Record<string, unknown>>;
  readonly seed?: number;
  /**
   * The video's name in the seeds of the drawn masks, with `seed` (default: the input's file name,
   * so the same video gets the same holes wherever it lies, a worker's scratch copy included).
   */
  readonly name?: string;
  /** Value the model saw in holes during training with a mask video: white (default) or black. */
  readonly fill?: 'white' | 'black';
  readonly backend?: string;
  readonly log?: (line: string) => void;
  /** Stops the run (Ctrl-C): the partial output is removed and the run fails with a CancelledError (as the cause of the stage error that carries it). */
  readonly signal?: AbortSignal;
}

export interface ApplySummary {
  readonly frames: number;
  readonly width: number;
  readonly height: number;
  readonly seconds: number;
  /** Against the clean input, when the holes were drawn by an occlusion process. */
  readonly maskedMae?: number;
  readonly psnr?: number;
  /** Peak resident memory of this process, bytes. */
  readonly peakRss: number;
}

/** A run folder, its checkpoints folder or one `step-N` folder → the checkpoint to load. */
export function resolveCheckpoint(dir: string): string {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--checkpoint: no folder "${dir}"`);
  if (existsSync(join(dir, 'checkpoint.json'))) return dir;
  const found = latestCheckpoint(dir) ?? latestCheckpoint(join(dir, 'checkpoints'));
  if (!found) throw new UsageError(`--checkpoint: "${dir}" holds no checkpoint (step-N/ folders)`);
  return found.path;
}

interface Seen {
  readonly observed: Uint8Array;
  readonly mask: Uint8Array;
}

interface Pending extends Seen {
  readonly clean: Uint8Array | undefined;
  readonly sum: Float32Array;
  weight: number;
}

export async function inpaintVideo(o: ApplyOptions): Promise<ApplySummary> {
  const log = o.log ?? (() => {});
  const started = performance.now();
  if ((o.mask === undefined) === (o.occlusion === undefined)) throw new UsageError('apply: give either --mask MASKVIDEO or --occlusion NAME');
  const checkpointPath = resolveCheckpoint(o.checkpoint);
  const videoName = o.name ?? basename(o.input);
  const content = loadCheckpoint<TrainerState>(checkpointPath);
  const config = content.state.config;
  let info;
  try {
    info = probeVideo(o.input);
  } catch (err) {
    throw new UsageError(`--input ${(err as Error).message}`);
  }
  const { width: W0, height: H0 } = info;
  const C = config.channels;
  const T = config.frames;
  const pixFmt = C === 1 ? 'gray' : 'rgb24';
  const pixels = W0 * H0;
  if (o.mask) {
    let maskInfo;
    try {
      maskInfo = probeVideo(o.mask);
    } catch (err) {
      throw new UsageError(`--mask ${(err as Error).message}`);
    }
    if (maskInfo.width !== W0 || maskInfo.height !== H0) throw new UsageError(`--mask ${o.mask} is ${maskInfo.width}×${maskInfo.height}, the input ${o.input} is ${W0}×${H0}`);
  }

  log(describeSelection(await selectBackend(o.backend ?? 'auto')));
  const unused = Random.fromKey('apply').state;
  const trainer = new GanTrainer({ config, seed: content.state.seed, fill: 1, timeDependent: true, sampler: { sample: () => new Uint8Array(0), state: unused }, generatorAverage: content.state.generatorAverage ?? 0 });
  trainer.restore(content);
  log(`model ${checkpointPath} (step ${content.step}): ${T} frames of ${config.width}×${config.height}×${C}; input ${o.input} ${W0}×${H0} at ${info.fps} fps`);

  // Holes: a mask video, or an occlusion process drawn in chunks of T frames.
  let fill = o.fill === 'black' ? 0 : 255;
  let drawer: MaskDrawer | undefined;
  let occlusionName = '';
  const occlusion = o.occlusion ? chooseOcclusion(o.occlusion, o.occlusionOptions ?? {}) : undefined;
  if (occlusion) {
    drawer = await occlusion.process.prepare(occlusion.options as never, { frames: T, height: H0, width: W0 });
    fill = fillValue(occlusion.process, [0, 255]);
    occlusionName = occlusion.process.name;
  }
  const frames = new FrameReader(o.input, pixels * C, pixFmt);
  const masks = o.mask ? new FrameReader(o.mask, pixels, 'gray') : undefined;
  const writer = new VideoWriter(o.output, info, pixFmt);
  let drawn: Uint8Array | undefined;

  // The last T frames as observed (a final window may reach back past frames already written),
  // and the accumulators of frames not yet written: both at most T frames, whatever the length.
  const recent = new Map<number, Seen>();
  const pending = new Map<number, Pending>();
  let nextStart = 0;
  let written = 0;
  let count = 0;
  let hiddenAbs = 0;
  let hiddenCount = 0;
  let squared = 0;
  const hop = Math.max(1, Math.floor(T / 2));
  let lastLog = performance.now();

  /** Fills window [start, start + T) (indices past the end repeat the last frame) into the pending frames. */
  const runWindow = async (start: number, last: number): Promise<void> => {
    const index = (k: number): number => Math.min(start + k, last);
    const values = tf.tidy(() => {
      const obs = new Float32Array(T * pixels * C);
      const vis = new Float32Array(T * pixels);
      for (let k = 0; k < T; k++) {
        const f = recent.get(index(k))!;
        for (let i = 0; i < pixels * C; i++) obs[k * pixels * C + i] = f.observed[i]! / 255;
        for (let i = 0; i < pixels; i++) vis[k * pixels + i] = f.mask[i]!;
      }
      const small = tf.image.resizeBilinear(tf.tensor4d(obs, [T, H0, W0, C]), [config.height, config.width]);
      // A model pixel counts as visible only when all of it was.
      const visible = tf.cast(tf.greaterEqual(tf.image.resizeBilinear(tf.tensor4d(vis, [T, H0, W0, 1]), [config.height, config.width]), 0.999), 'float32');
      const y = tf.add(tf.mul(tf.sub(tf.mul(small, 2), 1), visible), tf.mul(fill === 255 ? 1 : -1, tf.sub(1, visible)));
      const filled = trainer.inpaint(tf.reshape(y, [1, T, config.height, config.width, C]) as tf.Tensor5D, tf.reshape(visible, [1, T, config.height, config.width, 1]) as tf.Tensor5D);
      const big = tf.image.resizeBilinear(tf.reshape(filled, [T, config.height, config.width, C]) as tf.Tensor4D, [H0, W0]);
      return tf.clipByValue(tf.div(tf.add(big, 1), 2), 0, 1);
    });
    let out: Float32Array;
    try {
      out = (await values.data()) as Float32Array;
    } finally {
      values.dispose();
    }
    for (let k = 0; k < T && start + k <= last; k++) {
      const f = pending.get(start + k);
      if (!f) continue; // written already
      const w = Math.min(k + 1, T - k);
      for (let i = 0; i < pixels * C; i++) f.sum[i]! += w * out[k * pixels * C + i]!;
      f.weight += w;
    }
  };

  const emit = async (upTo: number): Promise<void> => {
    for (; written < upTo; written++) {
      const f = pending.get(written)!;
      pending.delete(written);
      const frame = new Uint8Array(pixels * C);
      for (let p = 0; p < pixels; p++) {
        for (let c = 0; c < C; c++) {
          const i = p * C + c;
          frame[i] = f.mask[p] ? f.observed[i]! : Math.round((255 * f.sum[i]!) / f.weight);
          if (f.clean) {
            const d = (frame[i]! - f.clean[i]!) / 255;
            squared += d * d;
            if (!f.mask[p]) (hiddenAbs += Math.abs(d)), hiddenCount++;
          }
        }
      }
      await writer.write(frame);
    }
    if (performance.now() - lastLog > 5000) {
      lastLog = performance.now();
      log(`apply: ${written} frames written`);
    }
  };

  try {
    await lastValueFrom(
      source('input-frames', async function* () {
        for (let i = 0; ; i++) {
          const frame = await frames.next();
          if (!frame) return;
          let mask: Uint8Array;
          if (masks) {
            const m = await masks.next();
            if (!m) throw new Error(`--mask ${o.mask} has fewer frames than the input (${i})`);
            mask = Uint8Array.from(m, (v) => (v >= 128 ? 0 : 1));
          } else {
            if (i % T === 0) drawn = drawer!.draw(clipRandom(o.seed ?? 0, `${videoName}#${i / T}`, occlusionName, occlusion!.options));
            mask = drawn!.slice((i % T) * pixels, (i % T + 1) * pixels);
          }
          yield { index: i, frame: Uint8Array.from(frame), mask };
        }
      }).pipe(
        mapAsync(
          'inpaint-windows',
          async ({ index, frame, mask }: { index: number; frame: Uint8Array; mask: Uint8Array }) => {
            if (o.signal?.aborted) throw new CancelledError(String(o.signal.reason ?? 'aborted'));
            const clean = occlusion ? frame : undefined;
            const observed = occlusion ? applyMask(frame, mask, C, fill) : frame;
            pending.set(index, { observed, mask, clean, sum: new Float32Array(pixels * C), weight: 0 });
            recent.set(index, { observed, mask });
            recent.delete(index - T);
            count = index + 1;
            if (index === nextStart + T - 1) {
              await runWindow(nextStart, index);
              await emit(nextStart + hop);
              nextStart += hop;
            }
            return index;
          },
          { concurrency: 1 },
        ),
        unwrap(),
      ),
      { defaultValue: undefined },
    );
    // The tail: one more window ending at the last frame covers what the last full one did not.
    if (count > 0) {
      if (written < count) {
        const needs = [...pending.values()].some((f) => f.weight === 0);
        if (needs || count < T) await runWindow(Math.max(0, count - T), count - 1);
        await emit(count);
      }
    }
    await writer.finish();
  } catch (err) {
    writer.abort();
    throw err;
  } finally {
    frames.close();
    masks?.close();
    trainer.dispose();
  }
  const summary: ApplySummary = {
    frames: count,
    width: W0,
    height: H0,
    seconds: (performance.now() - started) / 1000,
    peakRss: process.resourceUsage().maxRSS * 1024,
    ...(occlusion ? { maskedMae: hiddenCount ? hiddenAbs / hiddenCount : 0, psnr: 10 * Math.log10((count * pixels * C) / squared) } : {}),
  };
  return summary;
}

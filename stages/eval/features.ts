/**
 * Feature extractors for FID and FVD (method.md §7): a tfjs graph model the user converted from
 * the reference weights (README: where they come from and the conversion commands), loaded from a
 * folder or a URL of `model.json` and its weight shards. Its shapes are checked before use, so
 * that nothing is called FID unless it came from a model of Inception-v3's shapes:
 *
 * | kind | input | output |
 * |---|---|---|
 * | inception (FID) | [N, 299, 299, 3], values in [−1, 1] | [N, 2048] pool features |
 * | i3d (FVD) | [N, T, 224, 224, 3], values in [−1, 1] | [N, 400] Kinetics-400 logits |
 *
 * Frames come in as floats in [0, 1] of any size and channel count; they are resized bilinearly,
 * gray repeated to three channels, and scaled to [−1, 1] here.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs-converter';
import fetch from 'node-fetch';
import sharp from 'sharp';
import { UsageError } from '../../pipeline/errors.ts';
import { FeatureMoments, frechetOfSets, type FeatureSet } from './frechet.ts';
import { FrameReader, probeVideo } from '../io/video.ts';

export type FeatureKind = 'inception' | 'i3d';

const SHAPES: Readonly<Record<FeatureKind, { readonly size: number; readonly features: number; readonly rank: number; readonly metric: string }>> = {
  inception: { size: 299, features: 2048, rank: 4, metric: 'FID' },
  i3d: { size: 224, features: 400, rank: 5, metric: 'FVD' },
};

interface ModelJson {
  readonly modelTopology: unknown;
  readonly weightsManifest: ReadonlyArray<{ readonly paths: readonly string[]; readonly weights: tf.io.WeightsManifestEntry[] }>;
  readonly format?: string;
  readonly generatedBy?: string;
  readonly convertedBy?: string;
  readonly signature?: unknown;
  readonly userDefinedMetadata?: Record<string, unknown>;
}

/** model.json and its shards, from a folder or a URL (the folder's URL, or of model.json itself). */
async function readModelFiles(location: string): Promise<{ json: ModelJson; shards: Uint8Array[] }> {
  const remote = /^https?:\/\//.test(location);
  const modelUrl = remote ? (location.endsWith('.json') ? location : `${location.replace(/\/$/, '')}/model.json`) : existsSync(join(location, 'model.json')) ? join(location, 'model.json') : location;
  const read = async (path: string): Promise<Uint8Array> => {
    if (!remote) {
      if (!existsSync(path)) throw new UsageError(`--model ${location}: no ${path}`);
      return readFileSync(path);
    }
    const response = await fetch(path);
    if (!response.ok) throw new UsageError(`--model ${location}: ${path} answered HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  };
  let json: ModelJson;
  try {
    json = JSON.parse(new TextDecoder().decode(await read(modelUrl))) as ModelJson;
  } catch (err) {
    throw err instanceof UsageError ? err : new UsageError(`--model ${location}: model.json is not JSON (${(err as Error).message})`);
  }
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) throw new UsageError(`--model ${location}: model.json is not a tfjs model (no modelTopology or weightsManifest)`);
  const base = modelUrl.slice(0, modelUrl.lastIndexOf('/') + 1) || './';
  const shards: Uint8Array[] = [];
  for (const group of json.weightsManifest) for (const path of group.paths) shards.push(await read(remote ? new URL(path, base).toString() : join(base, path)));
  return { json, shards };
}

export class FeatureModel {
  private constructor(
    readonly kind: FeatureKind,
    readonly location: string,
    private readonly model: GraphModel,
  ) {}

  /** Loads and checks a converted Inception-v3 (`inception`) or I3D (`i3d`) graph model. */
  static async load(location: string, kind: FeatureKind): Promise<FeatureModel> {
    const { json, shards } = await readModelFiles(location);
    const total = shards.reduce((a, s) => a + s.byteLength, 0);
    const weightData = new Uint8Array(total);
    let at = 0;
    for (const s of shards) (weightData.set(s, at), (at += s.byteLength));
    let model: GraphModel;
    try {
      model = await loadGraphModel(
        tf.io.fromMemory({
          modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'],
          weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
          weightData: weightData.buffer,
          format: json.format,
          generatedBy: json.generatedBy,
          convertedBy: json.convertedBy,
          signature: json.signature as tf.io.ModelArtifacts['signature'],
          userDefinedMetadata: json.userDefinedMetadata,
        }),
      );
    } catch (err) {
      throw new UsageError(`--model ${location}: not a tfjs graph model (${(err as Error).message})`);
    }
    const f = new FeatureModel(kind, location, model);
    f.check();
    return f;
  }

  private check(): void {
    const want = SHAPES[this.kind];
    const input = this.model.inputs[0]?.shape ?? [];
    const size = [want.size, want.size, 3];
    const tail = input.slice(-3);
    if (input.length !== want.rank || tail.some((d, i) => d !== -1 && d !== size[i])) {
      throw new UsageError(`--model ${this.location}: input shape [${input.join(', ')}]; ${want.metric} needs [N, ${this.kind === 'i3d' ? 'T, ' : ''}${size.join(', ')}] (is it the ${this.kind === 'inception' ? 'Inception-v3' : 'I3D'} model?)`);
    }
    const probe = this.kind === 'inception' ? tf.zeros([1, want.size, want.size, 3]) : tf.zeros([1, 8, want.size, want.size, 3]);
    const out = this.model.predict(probe) as tf.Tensor;
    const shape = out.shape;
    tf.dispose([probe, out]);
    if (shape.length !== 2 || shape[1] !== want.features) {
      throw new UsageError(`--model ${this.location}: output shape [${shape.join(', ')}]; ${want.metric} needs [N, ${want.features}] (is it the ${this.kind === 'inception' ? 'Inception-v3 pool' : 'I3D logits'} output?)`);
    }
  }

  get dimension(): number {
    return SHAPES[this.kind].features;
  }

  /**
   * Features of frames (inception) or clips (i3d).
   * @param pixels N·H·W·C (inception) or N·T·H·W·C (i3d) floats in [0, 1].
   * @returns N × dimension features.
   */
  async features(pixels: Float32Array, shape: { readonly count: number; readonly frames?: number; readonly height: number; readonly width: number; readonly channels: number }): Promise<Float32Array> {
    const size = SHAPES[this.kind].size;
    const out = tf.tidy(() => {
      const T = this.kind === 'i3d' ? (shape.frames ?? 1) : 1;
      let x: tf.Tensor4D = tf.tensor4d(pixels, [shape.count * T, shape.height, shape.width, shape.channels]);
      if (shape.channels === 1) x = tf.tile(x, [1, 1, 1, 3]);
      else if (shape.channels !== 3) throw new Error(`frames of ${shape.channels} channels: 1 or 3 expected`);
      if (shape.height !== size || shape.width !== size) x = tf.image.resizeBilinear(x, [size, size]);
      const scaled = tf.sub(tf.mul(x, 2), 1);
      const input = this.kind === 'i3d' ? tf.reshape(scaled, [shape.count, T, size, size, 3]) : scaled;
      return this.model.predict(input) as tf.Tensor;
    });
    try {
      return (await out.data()) as Float32Array;
    } finally {
      out.dispose();
    }
  }

  dispose(): void {
    this.model.dispose();
  }
}

const IMAGE = /\.(png|jpe?g|webp|bmp|tiff?)$/i;
const VIDEO = /\.(mp4|avi|mkv|mov|webm)$/i;

function filesIn(folder: string, pattern: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(folder).sort()) {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) out.push(...filesIn(path, pattern));
    else if (pattern.test(name)) out.push(path);
  }
  return out;
}

export interface Frames {
  readonly name: string;
  /** count·T·H·W·3 floats in [0, 1]. */
  readonly pixels: Float32Array;
  readonly frames: number;
  readonly height: number;
  readonly width: number;
}

const unit = (bytes: Uint8Array): Float32Array => Float32Array.from(bytes, (v) => v / 255);

/** Every image of a folder (recursively) and every frame of its videos, one at a time, as RGB. */
export async function* framesIn(folder: string): AsyncGenerator<Frames> {
  const images = filesIn(folder, IMAGE);
  const videos = filesIn(folder, VIDEO);
  if (images.length + videos.length === 0) throw new UsageError(`${folder}: no images (png, jpg, webp, bmp, tif) or videos (mp4, avi, mkv, mov, webm) under it`);
  for (const path of images) {
    const { data, info } = await sharp(path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    yield { name: path, pixels: unit(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)), frames: 1, height: info.height, width: info.width };
  }
  for (const path of videos) {
    const { width, height } = probeVideo(path);
    const reader = new FrameReader(path, width * height * 3, 'rgb24');
    try {
      for (let t = 0; ; t++) {
        const frame = await reader.next();
        if (!frame) break;
        yield { name: `${path}#${t}`, pixels: unit(frame), frames: 1, height, width };
      }
    } finally {
      reader.close();
    }
  }
}

/** The first `frames` frames of every video of a folder (recursively; padded by repeating the last), as RGB clips. */
export async function* clipsIn(folder: string, frames: number): AsyncGenerator<Frames> {
  const videos = filesIn(folder, VIDEO);
  if (videos.length === 0) throw new UsageError(`${folder}: no videos (mp4, avi, mkv, mov, webm) under it`);
  for (const path of videos) {
    const { width, height } = probeVideo(path);
    const reader = new FrameReader(path, width * height * 3, 'rgb24');
    try {
      const size = width * height * 3;
      const clip = new Float32Array(frames * size);
      let last: Uint8Array | undefined;
      for (let t = 0; t < frames; t++) {
        last = (await reader.next()) ?? last;
        if (!last) throw new UsageError(`${path}: no frames`);
        clip.set(unit(last), t * size);
      }
      yield { name: path, pixels: clip, frames, height, width };
    } finally {
      reader.close();
    }
  }
}

/**
 * Feature vectors of a folder: every image and video frame (inception), or each video's first
 * `frames` frames (i3d). `progress` is called after each item.
 */
export async function folderFeatures(model: FeatureModel, folder: string, o: { frames?: number; progress?: (done: number) => void } = {}): Promise<Float32Array> {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new UsageError(`${folder}: not a folder`);
  const rows: Float32Array[] = [];
  const items = model.kind === 'i3d' ? clipsIn(folder, o.frames ?? 16) : framesIn(folder);
  for await (const item of items) {
    rows.push(await model.features(item.pixels, { count: 1, frames: item.frames, height: item.height, width: item.width, channels: 3 }));
    o.progress?.(rows.length);
  }
  return stack(rows, model.dimension);
}

/** Feature rows one after the other in one array. */
function stack(rows: readonly Float32Array[], dimension: number): Float32Array {
  const out = new Float32Array(rows.length * dimension);
  rows.forEach((r, i) => out.set(r, i * dimension));
  return out;
}

/** Feature vectors of one set, kept as rows while few (the exact sample route), folded into moments past the dimension. */
class FeatureSetBuilder {
  private rows: Float32Array[] = [];
  private moments?: FeatureMoments;
  count = 0;

  constructor(readonly dimension: number) {}

  add(features: Float32Array): void {
    this.count += features.length / this.dimension;
    if (this.moments) return this.moments.add(features);
    this.rows.push(features);
    // n₁·n₂ ≤ d² holds while both sets have at most d vectors: beyond, moments are the cheaper route.
    if (this.count > this.dimension) {
      this.moments = new FeatureMoments(this.dimension);
      for (const r of this.rows) this.moments.add(r);
      this.rows = [];
    }
  }

  set(): FeatureSet {
    return this.moments ? { gaussian: this.moments.gaussian() } : { samples: stack(this.rows, this.dimension) };
  }
}

/**
 * FID and FVD of every method against the clean clips, accumulated a group of clips at a time, so
 * that a whole test split is scored in bounded memory (the features' moments, never the clips).
 */
export class SetDistanceAccumulator {
  private readonly sets = new Map<string, Map<'fid' | 'fvd', FeatureSetBuilder>>();
  private readonly models: Array<readonly ['fid' | 'fvd', FeatureModel]>;

  constructor(
    models: { readonly fid?: FeatureModel; readonly fvd?: FeatureModel },
    private readonly shape: { readonly frames: number; readonly height: number; readonly width: number; readonly channels: number },
  ) {
    this.models = (['fid', 'fvd'] as const).flatMap((k) => (models[k] ? [[k, models[k]!] as const] : []));
  }

  /** Adds clips of one method (`truth` for the clean clips), in [0, 1]. */
  async add(method: string, clips: readonly Float32Array[]): Promise<void> {
    const { frames: T, height: H, width: W, channels: C } = this.shape;
    const frameSize = H * W * C;
    let row = this.sets.get(method);
    if (!row) this.sets.set(method, (row = new Map()));
    for (const [metric, model] of this.models) {
      let set = row.get(metric);
      if (!set) row.set(metric, (set = new FeatureSetBuilder(model.dimension)));
      for (const clip of clips) {
        if (model.kind === 'i3d') set.add(await model.features(clip, { count: 1, frames: T, height: H, width: W, channels: C }));
        else for (let t = 0; t < T; t++) set.add(await model.features(clip.subarray(t * frameSize, (t + 1) * frameSize), { count: 1, height: H, width: W, channels: C }));
      }
    }
  }

  /** method → metric → distance to `truth`; a metric with fewer than two vectors (FVD of one clip) is left out. */
  distances(): Record<string, Record<string, number>> {
    const truth = this.sets.get('truth');
    const out: Record<string, Record<string, number>> = {};
    for (const [metric, model] of this.models) {
      const real = truth?.get(metric);
      if (!real || real.count < 2) continue;
      const realSet = real.set();
      for (const [method, row] of this.sets) {
        if (method === 'truth') continue;
        (out[method] ??= {})[metric] = frechetOfSets(row.get(metric)!.set(), realSet, model.dimension);
      }
    }
    return out;
  }
}

/**
 * Face boxes for face crops (FaceForensics++): the SSD MobileNet v1 detector of
 * `@vladmandic/face-api`, whose weights ship inside the npm package (nothing is downloaded), run
 * on the tfjs backend in use. {@link squareAround} turns a box into the square crop, enlarged by
 * a margin and kept inside the frame, that every frame of a clip is cut to (one box per clip, so
 * the crop does not jitter).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../pipeline/backend.ts';

export interface Box {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly score: number;
}

interface FaceApi {
  nets: { ssdMobilenetv1: { loadFromDisk(path: string): Promise<void>; isLoaded: boolean } };
  SsdMobilenetv1Options: new (o: { minConfidence: number; maxResults: number }) => unknown;
  detectAllFaces(input: tf.Tensor3D, options: unknown): Promise<Array<{ score: number; box: { x: number; y: number; width: number; height: number } }>>;
}

let loading: Promise<FaceApi> | undefined;

async function faceApi(): Promise<FaceApi> {
  loading ??= (async () => {
    // The detector runs on whatever backend the process uses; before one is chosen, the fastest that loads.
    if (!tf.getBackend()) await selectBackend('auto');
    const require = createRequire(import.meta.url);
    let api: FaceApi;
    try {
      api = require('@vladmandic/face-api/dist/face-api.node-wasm.js') as FaceApi;
    } catch (err) {
      throw new Error(`the face detector (@vladmandic/face-api) did not load: ${err instanceof Error ? err.message : String(err)}; use --dataset-option crop=centre`);
    }
    await api.nets.ssdMobilenetv1.loadFromDisk(join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'model'));
    return api;
  })();
  return loading;
}

/**
 * The most confident face in an RGB frame, or undefined when there is none above `minConfidence`.
 * @param frame H·W·3 bytes.
 */
export async function detectFace(frame: Uint8Array, height: number, width: number, minConfidence = 0.5): Promise<Box | undefined> {
  const api = await faceApi();
  const input = tf.tensor3d(frame, [height, width, 3], 'int32');
  try {
    const faces = await api.detectAllFaces(input, new api.SsdMobilenetv1Options({ minConfidence, maxResults: 10 }));
    const best = faces.sort((a, b) => b.score - a.score)[0];
    return best && { x: best.box.x, y: best.box.y, width: best.box.width, height: best.box.height, score: best.score };
  } finally {
    input.dispose();
  }
}

/** The square of side max(w, h)·margin centred on a box, moved (and if need be shrunk) to lie inside the frame. */
export function squareAround(box: Pick<Box, 'x' | 'y' | 'width' | 'height'>, height: number, width: number, margin: number): { x: number; y: number; size: number } {
  const size = Math.min(Math.round(Math.max(box.width, box.height) * margin), height, width);
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  const x = Math.max(0, Math.min(width - size, Math.round(cx - size / 2)));
  const y = Math.max(0, Math.min(height - size, Math.round(cy - size / 2)));
  return { x, y, size };
}

/** The largest centred square of a frame (the crop without a detector). */
export function centreSquare(height: number, width: number): { x: number; y: number; size: number } {
  const size = Math.min(height, width);
  return { x: Math.floor((width - size) / 2), y: Math.floor((height - size) / 2), size };
}

/** Cuts a square out of an H·W·C frame. */
export function cropFrame(frame: Uint8Array, width: number, channels: number, square: { x: number; y: number; size: number }): Uint8Array {
  const { x, y, size } = square;
  const out = new Uint8Array(size * size * channels);
  for (let row = 0; row < size; row++) out.set(frame.subarray(((y + row) * width + x) * channels, ((y + row) * width + x + size) * channels), row * size * channels);
  return out;
}

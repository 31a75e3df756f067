/**
 * The checkpoint store: `DIR/step-N/` folders holding named float32 arrays (`tensors.bin`) and a
 * JSON state (`checkpoint.json`: step, counters, random-generator states, data position, and the
 * index of the arrays with a SHA-256 of their bytes). A checkpoint is written into a temporary
 * folder and renamed into place, so a crash mid-write leaves the previous checkpoints intact and
 * never a half-written `step-N`; reading checks the digest, so a damaged one is refused by name.
 * Non-finite values are refused when writing and when reading: a checkpoint is a state worth
 * returning to, and one holding NaN or infinities never is.
 * Synchronous on purpose: it runs in teardown (SIGINT), where nothing may be awaited.
 *
 * Must not know about any model or tensor library.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface NamedArray {
  readonly shape: readonly number[];
  readonly values: Float32Array;
}

export interface CheckpointContent<S = unknown> {
  readonly step: number;
  readonly state: S;
  readonly arrays: ReadonlyMap<string, NamedArray>;
}

interface Index {
  readonly format: 1;
  readonly step: number;
  readonly state: unknown;
  readonly sha256: string;
  readonly arrays: ReadonlyArray<{ name: string; shape: number[]; offset: number; length: number }>;
}

const INDEX = 'checkpoint.json';
const DATA = 'tensors.bin';
const STEP_DIR = /^step-(\d+)$/;

/**
 * Writes `content` as `dir/step-<step>/` (replacing one of that step) and removes all but the
 * newest `keep` checkpoints.
 * @returns the checkpoint's folder.
 */
export function saveCheckpoint<S>(dir: string, content: CheckpointContent<S>, keep = 3): string {
  mkdirSync(dir, { recursive: true });
  const arrays: Array<{ name: string; shape: number[]; offset: number; length: number }> = [];
  let bytes = 0;
  for (const [name, a] of content.arrays) {
    if (a.values.length !== a.shape.reduce((x, y) => x * y, 1)) throw new Error(`checkpoint array "${name}": ${a.values.length} values do not fill shape [${a.shape.join(', ')}]`);
    const bad = nonFinite(a.values);
    if (bad > 0) throw new Error(`checkpoint step-${content.step} not written: array "${name}" holds ${bad} non-finite values`);
    arrays.push({ name, shape: [...a.shape], offset: bytes, length: a.values.length });
    bytes += a.values.byteLength;
  }
  const data = Buffer.allocUnsafe(bytes);
  for (const { name, offset } of arrays) {
    const v = content.arrays.get(name)!.values;
    data.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), offset);
  }
  const index: Index = { format: 1, step: content.step, state: content.state, sha256: createHash('sha256').update(data).digest('hex'), arrays };

  const final = join(dir, `step-${content.step}`);
  const temporary = join(dir, `.step-${content.step}.tmp-${process.pid}-${Date.now()}`);
  mkdirSync(temporary);
  try {
    writeFileSync(join(temporary, DATA), data);
    writeFileSync(join(temporary, INDEX), JSON.stringify(index));
    if (existsSync(final)) {
      const old = `${temporary}.old`;
      renameSync(final, old);
      renameSync(temporary, final);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(temporary, final);
    }
  } catch (err) {
    rmSync(temporary, { recursive: true, force: true });
    throw err;
  }
  for (const { path } of listCheckpoints(dir).slice(0, -keep)) rmSync(path, { recursive: true, force: true });
  return final;
}

/** Complete checkpoints under `dir`, oldest first. Temporary folders of interrupted writes are not listed. */
export function listCheckpoints(dir: string): Array<{ step: number; path: string }> {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => ({ name, m: STEP_DIR.exec(name) }))
    .filter((e) => e.m && existsSync(join(dir, e.name, INDEX)))
    .map((e) => ({ step: Number(e.m![1]), path: join(dir, e.name) }))
    .sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(dir: string): { step: number; path: string } | undefined {
  return listCheckpoints(dir).at(-1);
}

/**
 * The newest checkpoint under `dir` that reads back intact (its index parses and its data matches
 * the digest). Each damaged one passed over is reported to `skipped` with the reason.
 */
export function latestIntactCheckpoint(dir: string, skipped?: (path: string, reason: string) => void): { step: number; path: string } | undefined {
  for (const checkpoint of listCheckpoints(dir).reverse()) {
    try {
      readVerified(checkpoint.path);
      return checkpoint;
    } catch (err) {
      skipped?.(checkpoint.path, (err as Error).message.split('\n')[0]!);
    }
  }
  return undefined;
}

/** Reads only the JSON part (step and state), without the arrays. */
export function readCheckpointState<S>(path: string): { step: number; state: S } {
  const index = readIndex(path);
  return { step: index.step, state: index.state as S };
}

function readIndex(path: string): Index {
  let index: Index;
  try {
    index = JSON.parse(readFileSync(join(path, INDEX), 'utf8')) as Index;
  } catch (err) {
    throw new Error(`checkpoint "${path}" is unreadable: ${(err as Error).message.split('\n')[0]}`);
  }
  if (index.format !== 1) throw new Error(`checkpoint "${path}" has format ${String(index.format)}, this version reads format 1`);
  return index;
}

/** Values that are NaN or infinite. */
function nonFinite(values: Float32Array): number {
  let bad = 0;
  for (const x of values) if (!Number.isFinite(x)) bad += 1;
  return bad;
}

/** A checkpoint's index and data, the data checked against the index's digest. */
function readVerified(path: string): { index: Index; data: Buffer } {
  const index = readIndex(path);
  const data = readFileSync(join(path, DATA));
  if (createHash('sha256').update(data).digest('hex') !== index.sha256) throw new Error(`checkpoint "${path}" is damaged: ${DATA} does not match its SHA-256`);
  return { index, data };
}

/**
 * @throws Error naming the checkpoint when it is damaged, and the array when one holds NaN or
 * infinities (written by hand or by an older build; the model had diverged).
 */
export function loadCheckpoint<S>(path: string): CheckpointContent<S> {
  const { index, data } = readVerified(path);
  const arrays = new Map<string, NamedArray>();
  for (const { name, shape, offset, length } of index.arrays) {
    // A copy, so the arrays are aligned and independent of the file buffer.
    const values = new Float32Array(length);
    new Uint8Array(values.buffer).set(data.subarray(offset, offset + length * 4));
    const bad = nonFinite(values);
    if (bad > 0) throw new Error(`checkpoint array "${name}" holds ${bad} non-finite values (${path}): the model diverged before it was saved; take an earlier checkpoint`);
    arrays.set(name, { shape, values });
  }
  return { step: index.step, state: index.state as S, arrays };
}

/**
 * Video files through ffmpeg: the `ffmpeg` on PATH when there is one, else the binary of the npm
 * package `@ffmpeg-installer/ffmpeg` (so `npm install` alone suffices). Probing reads ffmpeg's own
 * stream line; frames are raw `gray` or `rgb24` bytes; writing is lossless (FFV1 in .mkv or .avi,
 * RGB H.264 at qp 0 in .mp4) to a temporary name renamed when complete, so an interrupted write
 * leaves nothing behind and visible pixels come back bit for bit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { extname } from 'node:path';
import type { Readable } from 'node:stream';

let cached: string | undefined;

/** The ffmpeg to run. */
export function ffmpegPath(): string {
  if (cached) return cached;
  if (spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0) return (cached = 'ffmpeg');
  try {
    const path = (createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string }).path;
    if (existsSync(path)) return (cached = path);
  } catch {
    /* not installed */
  }
  throw new Error('ffmpeg is not on PATH and the @ffmpeg-installer/ffmpeg package is missing: install ffmpeg');
}

export interface VideoInfo {
  /** Width and height as displayed: a stream rotated a quarter turn has them swapped, as its decoded frames do. */
  readonly width: number;
  readonly height: number;
  /** The stream's display rotation in degrees, when it has one. */
  readonly rotation?: number;
  /** Frame rate as ffmpeg states it (e.g. "25", "30000/1001"). */
  readonly fps: string;
}

/** Reads a video's size and frame rate; a file ffmpeg cannot read gets a one-line error naming it. */
export function probeVideo(path: string): VideoInfo {
  if (!existsSync(path)) throw new Error(`${path}: no such file`);
  const r = spawnSync(ffmpegPath(), ['-hide_banner', '-i', path], { encoding: 'utf8' });
  const lines = r.stderr.split('\n');
  const at = lines.findIndex((l) => /Stream #\d+:\d+.*: Video:/.test(l));
  const stream = lines[at];
  const size = stream && /, (\d{2,5})x(\d{2,5})[, ]/.exec(stream);
  const fps = stream && /, ([\d.]+(?:\/\d+)?) (?:fps|tbr)/.exec(stream);
  if (!stream || !size) throw new Error(`${path}: not a video ffmpeg can read (${(r.stderr.trim().split('\n').pop() ?? '').trim()})`);
  // The stream's display rotation (a phone held upright): its metadata and side data, up to the
  // next stream. ffmpeg decodes frames turned upright, so a quarter turn swaps width and height.
  let rotation = 0;
  for (const line of lines.slice(at + 1)) {
    if (/^\s*Stream #/.test(line) || /^\S/.test(line)) break;
    const m = /rotation of (-?[\d.]+) degrees/.exec(line) ?? /^\s*rotate\s*:\s*(-?\d+)/.exec(line);
    if (m) rotation = Number(m[1]);
  }
  const quarter = Math.round(rotation / 90) % 2 !== 0;
  const [width, height] = quarter ? [Number(size[2]), Number(size[1])] : [Number(size[1]), Number(size[2])];
  return { width, height, fps: fps?.[1] ?? '25', ...(rotation !== 0 && { rotation }) };
}

/** Frames of a video as raw bytes, one exact frame per `next()`, read with backpressure. */
export class FrameReader {
  private readonly child: ChildProcess;
  private readonly chunks: AsyncIterator<Buffer>;
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  private failure: Error | undefined;
  private stderr = '';
  private readonly closed: Promise<unknown>;

  constructor(
    path: string,
    readonly frameBytes: number,
    pixFmt: 'gray' | 'rgb24',
    size?: { width: number; height: number },
  ) {
    const scale = size ? ['-vf', `scale=${size.width}:${size.height}`] : [];
    this.child = spawn(ffmpegPath(), ['-v', 'error', '-i', path, ...scale, '-f', 'rawvideo', '-pix_fmt', pixFmt, '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // The stream's own async iterator pulls one chunk at a time: ffmpeg blocks when we do not read.
    this.chunks = (this.child.stdout as Readable)[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (s: string) => (this.stderr = (this.stderr + s).slice(-1024)));
    this.child.on('error', (err) => (this.failure = err));
    this.closed = new Promise((resolve) => this.child.once('close', resolve));
    this.child.on('close', (code) => {
      if (code !== 0 && code !== null) this.failure ??= new Error(`${path}: ffmpeg exited with code ${code}: ${this.stderr.trim().split('\n').pop() ?? ''}`);
    });
  }

  /** The next frame, or undefined at the end of the video. */
  async next(): Promise<Uint8Array | undefined> {
    while (this.heldBytes < this.frameBytes) {
      if (this.failure) throw this.failure;
      const r = await this.chunks.next();
      if (r.done) {
        await this.closed;
        if (this.failure) throw this.failure;
        return undefined; // a trailing partial frame is not a frame
      }
      this.held.push(r.value);
      this.heldBytes += r.value.length;
    }
    const frame = new Uint8Array(this.frameBytes);
    let at = 0;
    while (at < this.frameBytes) {
      const chunk = this.held[0]!;
      const take = Math.min(chunk.length, this.frameBytes - at);
      frame.set(chunk.subarray(0, take), at);
      at += take;
      if (take === chunk.length) this.held.shift();
      else this.held[0] = chunk.subarray(take);
    }
    this.heldBytes -= this.frameBytes;
    return frame;
  }

  close(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/** Writes raw frames into a lossless video; the file appears only when `finish()` succeeds. */
export class VideoWriter {
  private readonly child: ChildProcess;
  private readonly temporary: string;
  private failure: Error | undefined;
  private stderr = '';
  private readonly closed: Promise<number | null>;

  constructor(
    private readonly path: string,
    info: VideoInfo,
    pixFmt: 'gray' | 'rgb24',
  ) {
    const ext = extname(path).toLowerCase();
    if (!['.mkv', '.avi', '.mp4'].includes(ext)) throw new Error(`${path}: the output must be .mkv, .avi (FFV1) or .mp4 (lossless H.264), so that visible pixels are kept exactly`);
    this.temporary = `${path}.partial${ext}`;
    const codec = ext === '.mp4' ? ['-c:v', 'libx264rgb', '-qp', '0', '-pix_fmt', 'rgb24'] : ['-c:v', 'ffv1'];
    const input = ['-f', 'rawvideo', '-pix_fmt', pixFmt, '-s', `${info.width}x${info.height}`, '-r', info.fps, '-i', '-'];
    const outputFmt = ext === '.mp4' && pixFmt === 'gray' ? ['-vf', 'format=rgb24'] : [];
    this.child = spawn(ffmpegPath(), ['-v', 'error', '-y', ...input, ...outputFmt, ...codec, this.temporary], { stdio: ['pipe', 'ignore', 'pipe'] });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (s: string) => (this.stderr = (this.stderr + s).slice(-1024)));
    this.child.on('error', (err) => (this.failure = err));
    this.child.stdin!.on('error', (err) => (this.failure ??= err));
    this.closed = new Promise((resolve) => this.child.once('close', resolve));
  }

  /** Writes one frame, waiting while the encoder's pipe is full. */
  async write(frame: Uint8Array): Promise<void> {
    if (this.failure) throw new Error(`${this.path}: ${this.failure.message}`);
    if (!this.child.stdin!.write(frame)) await new Promise((resolve) => this.child.stdin!.once('drain', resolve));
  }

  async finish(): Promise<void> {
    this.child.stdin!.end();
    const code = await this.closed;
    if (code !== 0 || this.failure) {
      rmSync(this.temporary, { force: true });
      throw new Error(`${this.path}: ffmpeg could not write it (${this.failure?.message ?? this.stderr.trim().split('\n').pop() ?? `exit ${code}`})`);
    }
    renameSync(this.temporary, this.path);
  }

  /** Stops the encoder and removes the partial file (once ffmpeg has let go of it). */
  abort(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
    rmSync(this.temporary, { force: true });
    void this.closed.then(() => rmSync(this.temporary, { force: true }));
  }
}

/**
 * Decodes a whole (small) video held in memory, a zip entry for instance, into gray or RGB frames
 * scaled to `width` × `height`. ffmpeg reads it from a pipe, so nothing touches the disk.
 * @param name the video's name for errors (archive and entry).
 */
export async function decodeVideoBytes(bytes: Uint8Array, name: string, o: { width: number; height: number; pixFmt: 'gray' | 'rgb24' }): Promise<Uint8Array[]> {
  const frameBytes = o.width * o.height * (o.pixFmt === 'gray' ? 1 : 3);
  const child = spawn(ffmpegPath(), ['-v', 'error', '-i', 'pipe:0', '-vsync', 'passthrough', '-vf', `scale=${o.width}:${o.height}`, '-f', 'rawvideo', '-pix_fmt', o.pixFmt, '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (stderr = (stderr + s).slice(-1024)));
  const closed = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  child.stdin!.on('error', () => {}); // ffmpeg may stop reading a broken file early; its exit code says why
  child.stdin!.end(bytes);
  const chunks: Buffer[] = [];
  for await (const chunk of child.stdout as AsyncIterable<Buffer>) chunks.push(chunk);
  const code = await closed;
  const all = Buffer.concat(chunks);
  if (code !== 0 || all.length === 0) throw new Error(`${name}: not a video ffmpeg can decode (${stderr.trim().split('\n').pop() || `exit ${code}`})`);
  const frames: Uint8Array[] = [];
  for (let at = 0; at + frameBytes <= all.length; at += frameBytes) frames.push(new Uint8Array(all.subarray(at, at + frameBytes)));
  return frames;
}

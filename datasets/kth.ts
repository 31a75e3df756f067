/**
 * KTH human actions (method.md §6): six per-action zips of 160×120 AVIs (boxing, handclapping,
 * handwaving, jogging, running, walking; 25 people, 4 scenarios), cut into 2391 clips by the
 * `00sequences.txt` segmentation, decoded by ffmpeg to gray, resized to 64×64, 35 frames
 * (truncated, or padded by repeating the last frame). Zips are read as streams and videos
 * decoded from memory: nothing is extracted.
 *
 * The source is a folder of the zips with 00sequences.txt, one zip (with `sequences=PATH`), or the
 * URL of the site (or a mirror), whose seven files are downloaded once into the cache.
 *
 * Splits: the paper's seeded random 5/5/90 (val/test/train) by clip, or the official person-based
 * one (train 11–18, val 19–21, 23–25, 1, 4, test 22, 2, 3, 5–10).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UsageError, losing } from '../pipeline/errors.ts';
import type { FrameBatchSpec } from '../pipeline/frame-batch.ts';
import { resolveOptions, type ParamValues } from '../pipeline/graph.ts';
import { rangeParts } from './parts.ts';
import { expand } from '../pipeline/operators/expand.ts';
import { mapAsync } from '../pipeline/operators/map-async.ts';
import { source, type SourceOptions } from '../pipeline/operators/source.ts';
import type { Stream } from '../pipeline/stage.ts';
import { defaultCache, fetchToCache } from '../stages/io/fetch.ts';
import { decodeVideoBytes } from '../stages/io/video.ts';
import { zipEntries } from '../stages/io/zip.ts';
import { roundRobin } from '../stages/batch/interleave.ts';
import { Random } from '../stages/random.ts';
import type { DatasetClip, Split } from './synthetic.ts';

export const kthOptions = {
  split: { type: 'string', default: 'all', choices: ['all', 'train', 'val', 'test'], describe: 'which split' },
  'split-by': { type: 'string', default: 'random', choices: ['random', 'person'], describe: "the paper's seeded random 5/5/90, or the official person-based split" },
  frames: { type: 'number', default: 35, integer: true, min: 1, max: 1000, describe: 'frames per clip (truncated, or padded by repeating the last)' },
  size: { type: 'number', default: 64, integer: true, min: 8, max: 1024, describe: 'frame height and width' },
  seed: { type: 'number', default: 1, integer: true, min: 0, describe: 'seed of the random split' },
  sequences: { type: 'string', default: '', describe: 'the 00sequences.txt file (default: beside the zips)' },
  decoders: { type: 'number', default: 2, integer: true, min: 1, max: 64, describe: 'videos decoded at once (ffmpeg processes)' },
  interleave: { type: 'boolean', default: true, describe: 'read the action zips interleaved, a video from each in turn, so that the shuffle buffer mixes actions (false: zip after zip)' },
  'videos-from': { type: 'number', default: 0, integer: true, min: 0, describe: "first video decoded, by its place in the read order (a part, as a worker takes it); the videos before it are passed over undecoded" },
  'videos-until': { type: 'number', default: 0, integer: true, min: 0, describe: 'video the read stops before, by its place in the read order (0: the end)' },
} as const;

const PERSON_SPLIT: Record<number, Split> = Object.fromEntries([
  ...[11, 12, 13, 14, 15, 16, 17, 18].map((p) => [p, 'train' as const]),
  ...[19, 20, 21, 23, 24, 25, 1, 4].map((p) => [p, 'val' as const]),
  ...[22, 2, 3, 5, 6, 7, 8, 9, 10].map((p) => [p, 'test' as const]),
]);

/**
 * `person01_boxing_d1 frames 1-95, 96-185, …` → video name → 1-based inclusive frame ranges. The
 * file's prose header is passed over; a line that starts with `person` is an entry and must read
 * as one, so that a mistyped line is an error at its line rather than a video's clips silently lost.
 */
export function parseSequences(text: string, file: string): Map<string, Array<[number, number]>> {
  const out = new Map<string, Array<[number, number]>>();
  for (const [n, line] of text.split(/\r?\n/).entries()) {
    if (!/^\s*person/i.test(line)) continue;
    const m = /^\s*(person\d+_[a-z]+_d\d)\s+frames\s+(.+?)\s*$/.exec(line);
    if (!m) throw new UsageError(`${file}:${n + 1}: unreadable line "${line.trim()}" (expected "personNN_action_dN frames a-b, …")`);
    const ranges = m[2]!.split(',').map((r) => {
      const p = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(r);
      if (!p || Number(p[1]) < 1 || Number(p[1]) > Number(p[2])) throw new UsageError(`${file}:${n + 1}: unreadable frame range "${r.trim()}" (frames count from 1, first ≤ last)`);
      return [Number(p[1]), Number(p[2])] as [number, number];
    });
    if (out.has(m[1]!)) throw new UsageError(`${file}:${n + 1}: ${m[1]} is listed twice`);
    out.set(m[1]!, ranges);
  }
  if (out.size === 0) throw new UsageError(`${file}: no "personNN_action_dN frames a-b, …" lines (is it 00sequences.txt?)`);
  return out;
}

/** `person01_boxing_d1` → `boxing`. */
function actionOf(video: string): string {
  return /^person\d+_([a-z]+)_d\d$/.exec(video)?.[1] ?? '';
}

/** The files of the KTH site (http://www.csc.kth.se/cvap/actions/): the six action zips and the segmentation. */
export const KTH_FILES = ['boxing.zip', 'handclapping.zip', 'handwaving.zip', 'jogging.zip', 'running.zip', 'walking.zip', '00sequences.txt'] as const;

/** The zips and the segmentation of a local folder (or one zip). */
function localLayout(location: string, sequencesOption: string): { zips: string[]; sequences: Map<string, Array<[number, number]>> } {
  if (!existsSync(location)) throw new UsageError(`--source ${location}: no such file or folder`);
  const folder = statSync(location).isDirectory();
  const zips = folder ? readdirSync(location).filter((f) => f.endsWith('.zip')).sort().map((f) => join(location, f)) : [location];
  if (zips.length === 0) throw new UsageError(`--source ${location}: no .zip files in it`);
  const sequencesFile = sequencesOption || join(folder ? location : dirname(location), '00sequences.txt');
  if (!existsSync(sequencesFile)) throw new UsageError(`dataset "kth": no ${sequencesFile}; give --dataset-option sequences=PATH`);
  return { zips, sequences: parseSequences(readFileSync(sequencesFile, 'utf8'), sequencesFile) };
}

/** The site's files downloaded (once, resumably) into the cache; returns the folder. */
async function downloadKth(base: string): Promise<string> {
  const folder = join(defaultCache(), 'kth', createHash('sha256').update(base).digest('hex').slice(0, 12));
  const root = base.endsWith('/') ? base : `${base}/`;
  for (const file of KTH_FILES) await fetchToCache(new URL(file, root).toString(), { cache: folder, name: file });
  return folder;
}

type KthOptions = ParamValues<typeof kthOptions>;

/** The split of clip `id` of `video`: the official person-based split, or the paper's seeded random 5/5/90 by clip. */
function clipSplit(o: Pick<KthOptions, 'split-by' | 'seed'>, video: string, id: string): Split {
  if (o['split-by'] === 'person') return PERSON_SPLIT[Number(/^person(\d+)/.exec(video)![1])] ?? 'train';
  const u = Random.fromKey('kth-split', o.seed, id).uniform(0, 1);
  return u < 0.05 ? 'val' : u < 0.1 ? 'test' : 'train';
}

/**
 * The read cut into parts of about `size` clips, as video ranges in read order (`videos-from`,
 * `videos-until`), for workers: the parts' clips, one part after the other, are the whole read's.
 * Counted from 00sequences.txt (the videos of the split asked for); the last part runs to the end.
 */
export async function kthParts(location: string, given: Readonly<Record<string, unknown>>, size: number): Promise<Array<Record<string, number>>> {
  const o = resolveOptions('dataset "kth"', kthOptions, given);
  const { sequences } = /^https?:\/\//.test(location) ? localLayout(await downloadKth(location), o.sequences) : localLayout(location, o.sequences);
  // Videos holding clips of the split, and their clips of it.
  const counts = [...sequences].map(([video, ranges]) => ranges.filter((_, k) => o.split === 'all' || clipSplit(o, video, `${video}#${k}`) === o.split).length).filter((n) => n > 0);
  const clipsPerVideo = Math.max(1, counts.reduce((a, n) => a + n, 0) / Math.max(1, counts.length));
  const videosPerPart = Math.max(1, Math.round(size / clipsPerVideo));
  const end = o['videos-until'] || Infinity;
  const parts = rangeParts(['videos-from', 'videos-until'], o['videos-from'], Math.min(end, counts.length), videosPerPart);
  // The last part also takes whatever the zips hold past the count (0: to the end).
  if (!Number.isFinite(end) && 'videos-until' in parts.at(-1)!) parts.at(-1)!['videos-until'] = 0;
  return parts;
}

/** A segmented video read from its zip, with the clips the split wants. */
interface KthVideo {
  readonly zip: string;
  readonly entry: string;
  readonly video: string;
  readonly ranges: ReadonlyArray<readonly [number, number]>;
  readonly ids: readonly string[];
  /** Each clip's split, by the same index as `ranges`. */
  readonly splits: readonly Split[];
  readonly bytes: Uint8Array;
}

/** What went wrong with a zip, in the place of its videos (the decode stage names it). */
interface ZipProblem {
  readonly zip: string;
  readonly problem: unknown;
}

/** A video decoded to gray frames at the model's size. */
type DecodedVideo = Omit<KthVideo, 'bytes'> & { readonly frames: readonly Uint8Array[] };

/**
 * The clips as a chain: the zips (downloaded first for a URL) → their segmented videos → decoded
 * by ffmpeg (`decoders` at once) → cut into clips by the segmentation. Under `--on-error skip` a
 * zip, video or clip that cannot be read is dropped, named and counted by its stage.
 */
export function kthClips(location: string, given: Readonly<Record<string, unknown>>, stage: SourceOptions = {}): { spec: FrameBatchSpec; clips: Stream<DatasetClip> } {
  const o = resolveOptions('dataset "kth"', kthOptions, given);
  // A URL (the KTH site, or a mirror with the same files) is downloaded into the cache when the clips are first pulled.
  const remote = /^https?:\/\//.test(location);
  const local = remote ? undefined : localLayout(location, o.sequences);
  const T = o.frames;
  const S = o.size;
  const spec: FrameBatchSpec = { shape: { frames: T, height: S, width: S, channels: 1 }, pixelType: 'uint8', range: [0, 255] };
  /** The splits of a video's clips, and whether this read wants a clip of that split. */
  const splitsOf = (video: string, ranges: readonly unknown[]): Split[] => ranges.map((_, k) => clipSplit(o, video, `${video}#${k}`));
  const wants = (split: Split): boolean => o.split === 'all' || split === o.split;
  const policy = { onError: stage.onError };
  type Sequences = Map<string, Array<[number, number]>>;
  // With `interleave`, one group of all the zips, read a video from each in turn; else one group per zip.
  const zips = source(
    'kth-zips',
    async function* () {
      place = 0;
      const { zips, sequences } = local ?? localLayout(await downloadKth(location), o.sequences);
      if (o.interleave) yield { zips, sequences };
      else for (const zip of zips) yield { zips: [zip], sequences };
    },
    { capacity: 1 },
  );
  /** One zip's wanted videos; what goes wrong with the zip comes out as a problem in its place, so the other zips go on. */
  async function* videosOf(zip: string, sequences: Sequences): AsyncGenerator<KthVideo | ZipProblem> {
    const actions = new Set<string>();
    const found = new Set<string>();
    try {
      for await (const entry of zipEntries(zip)) {
        if (!/\.avi$/i.test(entry.path)) continue;
        const video = basename(entry.path).replace(/_uncomp\.avi$|\.avi$/i, '');
        actions.add(actionOf(video));
        found.add(video);
        const ranges = sequences.get(video);
        if (!ranges) continue;
        const splits = splitsOf(video, ranges);
        if (splits.some(wants)) yield { zip, entry: entry.path, video, ranges, ids: ranges.map((_, k) => `${video}#${k}`), splits, bytes: entry.bytes };
      }
    } catch (err) {
      // A zip that cannot be read further (cut short, a bad CRC, an entry escaping its folder).
      yield { zip, problem: err };
      return;
    }
    // Every segmented video of the actions this zip holds (or is named after, when it holds none) must be in it.
    if (actions.size === 0) actions.add(basename(zip).replace(/\.zip$/i, ''));
    const missing = [...sequences.keys()].filter((video) => actions.has(actionOf(video)) && !found.has(video));
    if (missing.length > 0) {
      const lost = missing.reduce((n, video) => n + splitsOf(video, sequences.get(video)!).filter(wants).length, 0);
      yield { zip, problem: losing(new Error(`00sequences.txt lists ${missing.join(', ')}, which the zip does not hold`), lost) };
    }
  }
  // A part (videos-from, videos-until) counts the videos in read order, across the groups.
  let place = 0;
  async function* within(items: AsyncIterable<KthVideo | ZipProblem>): AsyncGenerator<KthVideo | ZipProblem> {
    const until = o['videos-until'] || Infinity;
    for await (const item of items) {
      if (place >= until) return;
      if (place++ >= o['videos-from']) yield item;
    }
  }
  const videos = expand(
    'zip-entries',
    ({ zips: group, sequences }: { zips: readonly string[]; sequences: Sequences }) => within(roundRobin(group.map((zip) => videosOf(zip, sequences)))),
    { ...policy, capacity: o.decoders, describe: ({ zips: group }) => ({ file: group.join(', ') }) },
  );
  const decoded = mapAsync(
    'decode',
    async (item: KthVideo | ZipProblem): Promise<DecodedVideo> => {
      if ('problem' in item) throw item.problem;
      const { bytes, ...video } = item;
      try {
        return { ...video, frames: await decodeVideoBytes(bytes, `${video.zip}:${video.entry}`, { width: S, height: S, pixFmt: 'gray' }) };
      } catch (err) {
        // Skipping the video loses every clip the split wanted from it.
        throw losing(err, video.splits.filter(wants).length);
      }
    },
    { ...policy, concurrency: o.decoders, ordered: true, describe: (item) => ({ file: item.zip, ...('entry' in item && { entry: item.entry }) }) },
  );
  const cut = expand(
    'cut',
    function* ({ ranges, ids, splits, frames }: DecodedVideo): Generator<DatasetClip> {
      const short: string[] = [];
      for (const [k, [start, end]] of ranges.entries()) {
        if (!wants(splits[k]!)) continue;
        // A video shorter than its segmentation says was cut short: its clip is an error, not padding.
        if (end > frames.length) {
          short.push(`clip "${ids[k]}": 00sequences.txt asks for frames ${start}-${end}, the video decodes to ${frames.length} (truncated?)`);
          continue;
        }
        // A clip shorter than T frames repeats its last frame (method.md §4: padded to 35).
        const out = new Uint8Array(T * S * S);
        for (let t = 0; t < T; t++) out.set(frames[Math.min(start - 1 + t, end - 1)]!, t * S * S);
        yield { id: ids[k]!, split: splits[k]!, frames: out };
      }
      if (short.length > 0) throw losing(new Error(short.join('; ')), short.length);
    },
    { ...policy, describe: ({ zip, entry }) => ({ file: zip, entry }) },
  );
  return { spec, clips: zips.pipe(videos, decoded, cut) };
}

/**
 * What the paper's experiments (method.md §8) share besides their chain, which is in
 * graphs/kth-raindrops.ts: their parameters, the presets (`--preset paper` the paper's settings:
 * 64×64, 35 or 24 frames, C = 32; `--preset cpu` what a CPU trains in minutes: C = 4, 32×32,
 * 8 frames, 150 iterations; anything given explicitly wins over the preset), and the dataset's
 * splits opened at the model's shape.
 */
import type { FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { UsageError } from '../../pipeline/errors.ts';
import { parseOptionPairs, type ParamSpecs, type ParamValues, type RunContext } from '../../pipeline/graph.ts';
import { remoteDataset } from './distribute.ts';
import type { Stream } from '../../pipeline/stage.ts';
import { findDataset, sourceOf, type DatasetClip } from '../../datasets/index.ts';
import { parameterCounts } from '../../stages/gan/networks.ts';
import type { PaperModel } from '../../stages/gan/setup.ts';
import { TRAINING_PARAMS } from './training.ts';

/**
 * Settings a preset fills in where the command line leaves them unset (0; -1 for --stop-below).
 * `paper` is the authors' official run: batch 1, 100 epochs of the train split (no step bound),
 * the learning rates × 0.99 every 50 iterations, and their stopping rule (a loss under 0.001).
 */
export const PRESETS = {
  paper: { steps: 0, epochs: 100, batch: 1, base: 32, size: 64, frames: 0, 'eval-every': 1000, 'checkpoint-every': 1000, 'stop-below': 0.001 },
  cpu: { steps: 150, epochs: 0, batch: 4, base: 4, size: 32, frames: 8, 'eval-every': 25, 'checkpoint-every': 25, 'stop-below': 0 },
} as const;

type PresetKey = keyof typeof PRESETS.paper;
const presetValue = (preset: keyof typeof PRESETS, what: PresetKey): string => {
  const v = PRESETS[preset][what];
  if (v) return String(v);
  return what === 'frames' ? 'as the dataset' : what === 'stop-below' ? 'never' : 'none';
};
const fromPreset = (what: PresetKey, unset = 0): string => `(${unset}: the preset's; paper ${presetValue('paper', what)}, cpu ${presetValue('cpu', what)})`;

export const EXPERIMENT_PARAMS = {
  source: { type: 'string', default: '', describe: 'where the dataset is: a URL, file or folder (default: the official URL for kth and bair, downloaded into the cache; see docs/datasets.md)' },
  'dataset-option': { type: 'string', default: '', describe: 'dataset options as key=value,key=value (for example split-by=person for kth)' },
  'on-error': { type: 'string', default: 'fail', choices: ['fail', 'skip'] as const, describe: 'a clip that cannot be read: stop with its name (fail), or drop it, log it and go on (skip)' },
  preset: { type: 'string', default: 'paper', choices: ['paper', 'cpu'] as const, describe: "the authors' official run (batch 1, 100 epochs, their stopping rule), or a CPU-sized run" },
  steps: { type: 'number', default: 0, integer: true, min: 0, describe: `training iterations at most ${fromPreset('steps')}` },
  epochs: { type: 'number', default: 0, integer: true, min: 0, describe: `passes over the train split at most ${fromPreset('epochs')}` },
  'stop-below': { type: 'number', default: -1, min: -1, describe: `stop once the discriminators' or the generator's loss is under this, the authors' rule (0: never) ${fromPreset('stop-below', -1)}` },
  batch: { type: 'number', default: 0, integer: true, min: 0, describe: `clips per iteration ${fromPreset('batch')}` },
  base: { type: 'number', default: 0, integer: true, min: 0, describe: `base width C of the networks ${fromPreset('base')}` },
  size: { type: 'number', default: 0, integer: true, min: 0, describe: `frame height and width ${fromPreset('size')}` },
  frames: { type: 'number', default: 0, integer: true, min: 0, describe: `frames per clip ${fromPreset('frames')}` },
  'learning-rate': { type: 'number', default: 1e-4, min: 0, describe: 'Adam learning rate of G (decays ×0.99 every 50 steps)' },
  'd-learning-rate': { type: 'number', default: 1e-4, min: 0, describe: "the discriminators' learning rate" },
  'self-supervised': { type: 'number', default: 0, min: 0, describe: "weight of the self-supervised fill term (not in the paper; 0: the paper's model)" },
  seed: { type: 'number', default: 1, integer: true, min: 0, describe: 'seed of the shuffle, the masks and the weights' },
  shuffle: { type: 'number', default: 256, integer: true, min: 1, describe: 'shuffle buffer, in clips (bounds memory whatever the dataset size)' },
  'checkpoint-every': { type: 'number', default: 0, integer: true, min: 0, describe: `checkpoint every N steps and at the end ${fromPreset('checkpoint-every')}` },
  threads: { type: 'number', default: 0, integer: true, min: 0, max: 2, describe: 'training threads on a CPU backend (0: 2 when the machine has them and the batch allows)' },
  'eval-every': { type: 'number', default: 0, integer: true, min: 0, describe: `score model and baselines on test clips every N steps and at the end ${fromPreset('eval-every')}` },
  'eval-clips': { type: 'number', default: 0, integer: true, min: 0, describe: 'test clips scored: 0, the whole test split (streamed, as the paper); N, a seeded uniform sample of N drawn across it' },
  ...TRAINING_PARAMS,
} satisfies ParamSpecs;

export type ExperimentParams = ParamValues<typeof EXPERIMENT_PARAMS>;

export interface ExperimentDefinition<P extends ParamSpecs = ParamSpecs> {
  readonly name: string;
  /** One line; default: "<dataset> under <occlusion> at the paper's settings". */
  readonly description?: string;
  readonly dataset: string;
  readonly occlusion: string;
  /** The paper's clip length for this dataset (35; SST 24). */
  readonly frames: number;
  /** Options of the occlusion process, fixed or from the graph's own parameters. */
  readonly occlusionOptions?: (p: ParamValues<P>) => Readonly<Record<string, unknown>>;
  /** Parameters this experiment adds (for example the cloud threshold). */
  readonly params?: P;
  /** One of the paper's other models (absent: its unsupervised model). */
  readonly model?: PaperModel;
}

/** The settings of a run: the command line's, with 0 replaced by the preset's. */
export function resolvePreset(p: ExperimentParams, paperFrames: number): ExperimentParams {
  const preset = PRESETS[p.preset];
  const pick = (key: Exclude<PresetKey, 'stop-below'>): number => (p[key] as number) || preset[key];
  return {
    ...p,
    steps: pick('steps'),
    epochs: pick('epochs'),
    batch: pick('batch'),
    base: pick('base'),
    size: pick('size'),
    frames: pick('frames') || paperFrames,
    'eval-every': pick('eval-every'),
    'checkpoint-every': pick('checkpoint-every'),
    'stop-below': p['stop-below'] >= 0 ? p['stop-below'] : preset['stop-below'],
  };
}

const DATASET_TITLES: Readonly<Record<string, string>> = {
  kth: 'KTH actions (gray)',
  bair: 'BAIR robot pushing (colour, 30 frames padded to 35)',
  faceforensics: 'FaceForensics++ face crops (colour)',
  sst: 'sea-surface temperature (NEMO, Copernicus Marine)',
};

/** The graph's description line: "<dataset> under <occlusion> at the paper's settings". */
export function experimentDescription(e: Pick<ExperimentDefinition, 'description' | 'dataset' | 'occlusion' | 'frames'>): string {
  return e.description ?? `${DATASET_TITLES[e.dataset] ?? e.dataset} under ${e.occlusion}, at the paper's settings (64×64, ${e.frames} frames, C = 32; --preset cpu for a CPU)`;
}

/** The trainable parameters of each network at these settings (what `describe` prints). */
export function experimentParameters(e: Pick<ExperimentDefinition, 'dataset' | 'model'>, p: ExperimentParams): Record<string, number> {
  const variant = e.model === 'static' || e.model === 'recurrent' ? { variant: e.model } : {};
  return parameterCounts({ base: p.base, channels: findDataset(e.dataset).channels ?? 3, frames: p.frames, height: p.size, width: p.size, extraBlock: p['extra-block'], ...variant });
}

/**
 * The dataset's train and test splits as chains, from `--source` or its official URL, with the
 * dataset's options; and the clips' native spec and the model's (`--size`, `--frames`). A dataset
 * that can produce the model's size and length itself does (ffmpeg scales better than a second
 * resampling); the `fit` stages do the rest.
 * @throws UsageError for float frames (SST) at a size other than the dataset's.
 */
export function openDataset(name: string, p: ExperimentParams, run?: Pick<RunContext, 'distribute' | 'log'>): { train: Stream<DatasetClip>; test: Stream<DatasetClip>; native: FrameBatchSpec; spec: FrameBatchSpec } {
  const dataset = findDataset(name);
  const location = sourceOf(dataset, p.source);
  const extra = parseOptionPairs(`dataset "${name}"`, dataset.options, p['dataset-option'].split(',').map((o) => o.trim()).filter(Boolean));
  const shaped: Record<string, unknown> = {};
  if ('frames' in dataset.options) shaped.frames = p.frames;
  if ('size' in dataset.options) shaped.size = p.size;
  // Each subscription (an epoch of training, an evaluation) reads its split afresh.
  const open = (split: string) => dataset.open({ ...shaped, ...extra, split }, location, { onError: p['on-error'] });
  const train = open('train');
  const test = open('test');
  const native = test.spec;
  // With --distribute, the workers run the dataset's chain and these read what they send.
  const distribute = run?.distribute;
  const remote = (split: string): Stream<DatasetClip> => remoteDataset({ dataset, given: { ...shaped, ...extra, split }, ...(location && { location }), onError: p['on-error'], distribute: distribute!, ...(run?.log && { log: run.log }) });
  const spec: FrameBatchSpec = { ...native, shape: { frames: p.frames, height: p.size, width: p.size, channels: native.shape.channels } };
  if (native.pixelType !== 'uint8' && (native.shape.height !== spec.shape.height || native.shape.width !== spec.shape.width)) {
    throw new UsageError(`dataset "${name}" gives ${native.shape.height}×${native.shape.width} float frames; set --size ${native.shape.height} (float frames are cropped by the dataset, not resampled)`);
  }
  return distribute ? { train: remote('train'), test: remote('test'), native, spec } : { train: train.clips, test: test.clips, native, spec };
}

/**
 * The paper's experiments (method.md §8) as graphs: a dataset from its real source, one occlusion
 * process, the inpainting GAN at the paper's settings (64×64, 35 or 24 frames, C = 32), evaluated
 * on the dataset's test split against the baselines every K iterations. Each graph file under
 * `graphs/` is one call of {@link defineExperiment}.
 *
 * dataset train split (epochs; each epoch through a seeded shuffle buffer) → fit to the model's
 *   shape (resize, truncate or pad) → occlude → Arrow frame batches → train
 *   → every K iterations: model and baselines on the first test clips → report.html
 *
 * `--preset cpu` shrinks what a CPU cannot train in hours (C = 4, 32×32, 8 frames, 150
 * iterations); anything given explicitly wins over the preset.
 */
import type { ClipShape, FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import { UsageError } from '../../pipeline/errors.ts';
import { defineGraph, parseOptionPairs, type GraphDefinition, type ParamSpecs, type ParamValues } from '../../pipeline/graph.ts';
import { source } from '../../pipeline/operators/source.ts';
import { pull } from '../../pipeline/operators/pull.ts';
import { findDataset, sourceOf, type Dataset, type DatasetClip } from '../../datasets/index.ts';
import { shuffled } from '../../stages/batch/shuffle.ts';
import { reservoirSample } from '../../stages/batch/sample.ts';
import { fitClips } from '../../stages/frames/fit.ts';
import { parameterCounts } from '../../stages/gan/networks.ts';
import { chooseOcclusion } from '../../stages/occlusion/index.ts';
import { Random } from '../../stages/random.ts';
import { TRAINING_PARAMS, trainAndReport } from './training.ts';
import { runIfMain } from './main.ts';

/** Settings a preset fills in where the command line leaves 0. */
export const PRESETS = {
  paper: { steps: 100_000, batch: 8, base: 32, size: 64, frames: 0, 'eval-every': 1000, 'eval-clips': 64, 'checkpoint-every': 1000 },
  cpu: { steps: 150, batch: 4, base: 4, size: 32, frames: 8, 'eval-every': 25, 'eval-clips': 16, 'checkpoint-every': 25 },
} as const;

const fromPreset = (what: string): string => `(0: the preset's; paper ${PRESETS.paper[what as keyof typeof PRESETS.paper] || 'as the dataset'}, cpu ${PRESETS.cpu[what as keyof typeof PRESETS.cpu]})`;

export const EXPERIMENT_PARAMS = {
  source: { type: 'string', default: '', describe: 'where the dataset is: a URL, file or folder (default: the official URL for kth and bair, downloaded into the cache; see docs/datasets.md)' },
  'dataset-option': { type: 'string', default: '', describe: 'dataset options as key=value,key=value (for example split-by=person for kth)' },
  'on-error': { type: 'string', default: 'fail', choices: ['fail', 'skip'] as const, describe: 'a clip that cannot be read: stop with its name (fail), or drop it, log it and go on (skip)' },
  preset: { type: 'string', default: 'paper', choices: ['paper', 'cpu'] as const, describe: "the paper's settings, or a CPU-sized run" },
  steps: { type: 'number', default: 0, integer: true, min: 0, describe: `training iterations ${fromPreset('steps')}` },
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
  'eval-clips': { type: 'number', default: 0, integer: true, min: 0, describe: `test clips scored: a seeded uniform sample of the whole test split ${fromPreset('eval-clips')}` },
  ...TRAINING_PARAMS,
} satisfies ParamSpecs;

export type ExperimentParams = ParamValues<typeof EXPERIMENT_PARAMS>;

export interface ExperimentDefinition {
  readonly name: string;
  /** One line; default: "<dataset> under <occlusion> at the paper's settings". */
  readonly description?: string;
  readonly dataset: string;
  readonly occlusion: string;
  /** The paper's clip length for this dataset (35; SST 24). */
  readonly frames: number;
  /** Options of the occlusion process, fixed or from the graph's own parameters. */
  readonly occlusionOptions?: (p: Readonly<Record<string, unknown>>) => Readonly<Record<string, unknown>>;
  /** Parameters this experiment adds (for example the cloud threshold). */
  readonly params?: ParamSpecs;
}

/** The settings of a run: the command line's, with 0 replaced by the preset's. */
export function resolvePreset(p: ExperimentParams, paperFrames: number): ExperimentParams {
  const preset = PRESETS[p.preset];
  const pick = (key: keyof typeof PRESETS.paper): number => (p[key] as number) || preset[key] || paperFrames;
  return {
    ...p,
    steps: pick('steps'),
    batch: pick('batch'),
    base: pick('base'),
    size: pick('size'),
    frames: pick('frames'),
    'eval-every': pick('eval-every'),
    'eval-clips': pick('eval-clips'),
    'checkpoint-every': pick('checkpoint-every'),
  };
}

const DATASET_TITLES: Readonly<Record<string, string>> = {
  kth: 'KTH actions (gray)',
  bair: 'BAIR robot pushing (colour, 30 frames padded to 35)',
  faceforensics: 'FaceForensics++ face crops (colour)',
  sst: 'sea-surface temperature (NEMO, Copernicus Marine)',
};

/**
 * @example
 * export default experiment(import.meta.url, { name: 'kth-raindrops', dataset: 'kth', occlusion: 'raindrops', frames: 35 });
 * @param moduleUrl the graph file's `import.meta.url`: run directly (`npx tsx graphs/<name>.ts`), the file runs its graph.
 */
export function experiment(moduleUrl: string, e: ExperimentDefinition): GraphDefinition {
  const graph = defineExperiment(e);
  runIfMain(moduleUrl, e.name);
  return graph;
}

export function defineExperiment(e: ExperimentDefinition): GraphDefinition {
  const params = { ...EXPERIMENT_PARAMS, ...e.params } as ParamSpecs;
  const settings = (given: ParamValues<ParamSpecs>): ExperimentParams => resolvePreset(given as unknown as ExperimentParams, e.frames);
  return defineGraph({
    name: e.name,
    description: e.description ?? `${DATASET_TITLES[e.dataset] ?? e.dataset} under ${e.occlusion}, at the paper's settings (64×64, ${e.frames} frames, C = 32; --preset cpu for a CPU)`,
    params,
    parameters(given) {
      const p = settings(given);
      return parameterCounts({ base: p.base, channels: channelsOf(findDataset(e.dataset)), frames: p.frames, height: p.size, width: p.size, extraBlock: p['extra-block'] });
    },
    build(given, context) {
      const p = settings(given);
      const dataset = findDataset(e.dataset);
      // Without --source, the dataset's official URL (KTH, BAIR), downloaded into the cache.
      const location = sourceOf(dataset, p.source);
      const extra = parseOptionPairs(`dataset "${e.dataset}"`, dataset.options, p['dataset-option'].split(',').map((o) => o.trim()).filter(Boolean));
      // Datasets that can produce the model's size and length themselves do (ffmpeg scales better than a second resampling).
      const open = (split: string) => dataset.open({ ...shapeOptions(dataset, p), ...extra, split }, location, { onError: p['on-error'] });
      // Both splits' chains are composed here, so that `describe` lists them; each subscription
      // (an epoch of training, an evaluation) reads its split afresh.
      const train = open('train');
      const test = open('test');
      const native = test.spec;
      const target: ClipShape = { frames: p.frames, height: p.size, width: p.size, channels: native.shape.channels };
      const spec: FrameBatchSpec = { ...native, shape: target };
      if (native.pixelType !== 'uint8' && (native.shape.height !== target.height || native.shape.width !== target.width)) {
        throw new UsageError(`dataset "${e.dataset}" gives ${native.shape.height}×${native.shape.width} float frames; set --size ${native.shape.height} (float frames are cropped by the dataset, not resampled)`);
      }
      const heldOut = test.clips.pipe(fitClips('fit-test', native.shape, target));
      return trainAndReport(p, context, {
        title: `st-inpaint ${e.name}: ${e.dataset} under ${e.occlusion}`,
        spec,
        occlusion: chooseOcclusion(e.occlusion, e.occlusionOptions?.(given) ?? {}),
        settings: { dataset: e.dataset, occlusion: e.occlusion },
        clean: (start, count) =>
          source(`${e.dataset}-train`, async function* () {
            // Epoch after epoch through a seeded shuffle buffer; a resumed run skips what it trained on.
            let position = 0;
            for (let epoch = 0; position < start + count; epoch++) {
              let any = false;
              for await (const clip of shuffled(pull(train.clips), p.shuffle, Random.fromKey('shuffle', p.seed, epoch))) {
                any = true;
                if (position >= start) yield clip;
                position += 1;
                if (position >= start + count) return;
              }
              if (!any) throw new UsageError(`dataset "${e.dataset}" at ${location}: the train split is empty`);
            }
          }).pipe(fitClips('fit', native.shape, target)),
        // A seeded uniform sample of the whole test split, not its first clips (files are in
        // order: KTH's first clips are all boxing, SST's all January).
        heldOut: async () => {
          const { sample, seen } = await reservoirSample<DatasetClip>(pull(heldOut), p['eval-clips'], Random.fromKey('eval-sample', p.seed));
          context.log(`evaluation sample: ${sample.length} of the ${seen} test clips, drawn uniformly with seed ${p.seed}`);
          return sample;
        },
      });
    },
  });
}

function shapeOptions(dataset: Dataset, p: ExperimentParams): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if ('frames' in dataset.options) out.frames = p.frames;
  if ('size' in dataset.options) out.size = p.size;
  return out;
}

function channelsOf(dataset: Dataset): number {
  return dataset.channels ?? 3;
}

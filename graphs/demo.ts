/**
 * demo: the embedded synthetic set under raindrops, trained with the unsupervised inpainting GAN at
 * a CPU-sized preset. The clean clips exist only because the set is synthetic; training sees the
 * observed clips and their masks, nothing else.
 *
 * synthetic train split (epochs, seeded shuffle) → occlude raindrops → Arrow frame batches → train
 *   → every K iterations and at the end: the model and the baselines (DINEOF, temporal
 *     interpolation, mean fill) on held-out test clips → runs/demo/<id>/report.html
 */
import type { Observable } from 'rxjs';
import type { Clip } from '../pipeline/frame-batch.ts';
import { defineGraph, type ParamSpecs, type ParamValues, type RunContext } from '../pipeline/graph.ts';
import type { Stage } from '../pipeline/stage.ts';
import type { Leased } from '../pipeline/credit.ts';
import { source } from '../pipeline/operators/source.ts';
import { checkSyntheticOptions, syntheticClip, syntheticSpec, syntheticSplit } from '../datasets/synthetic.ts';
import { epochOrder } from '../stages/batch/epochs.ts';
import { parameterCounts } from '../stages/gan/networks.ts';
import { chooseOcclusion } from '../stages/occlusion/index.ts';
import type { Baseline } from '../stages/eval/baselines.ts';
import { TRAINING_PARAMS, trainAndReport } from './lib/training.ts';
import { runIfMain } from './lib/main.ts';

/** The demo's parameters (also those of graphs built on it, such as custom-stage-example). */
export const DEMO_PARAMS = {
  steps: { type: 'number', default: 150, integer: true, min: 1, describe: 'training iterations (one G step and two D steps each)' },
  batch: { type: 'number', default: 4, integer: true, min: 1, describe: 'clips per iteration' },
  clips: { type: 'number', default: 256, integer: true, min: 8, describe: 'synthetic clips in all splits' },
  frames: { type: 'number', default: 8, integer: true, min: 2, describe: 'frames per clip' },
  size: { type: 'number', default: 32, integer: true, min: 8, describe: 'frame height and width (even)' },
  base: { type: 'number', default: 2, integer: true, min: 1, describe: 'base width C of the networks (paper: 32)' },
  'learning-rate': { type: 'number', default: 3e-4, min: 0, describe: "Adam learning rate of G (paper: 1e-4; higher here, for a short CPU run)" },
  'd-learning-rate': { type: 'number', default: 1e-4, min: 0, describe: "the discriminators' learning rate (paper: the same as G's; a larger one is a two time-scale update)" },
  'self-supervised': { type: 'number', default: 10, min: 0, describe: "weight of the self-supervised fill term (not in the paper; 0: the paper's model exactly; see the README)" },
  seed: { type: 'number', default: 1, integer: true, min: 0, describe: 'seed of data, masks and weights' },
  'checkpoint-every': { type: 'number', default: 25, integer: true, min: 0, describe: 'checkpoint every N steps (and at the end; 0: only at the end)' },
  threads: { type: 'number', default: 0, integer: true, min: 0, max: 2, describe: 'training threads on a CPU backend (2: data-parallel over two cores; 0: 2 when the machine has them and the batch allows)' },
  'eval-every': { type: 'number', default: 25, integer: true, min: 0, describe: 'score model and baselines on held-out clips every N steps (and at the end; 0: only at the end)' },
  'eval-clips': { type: 'number', default: 16, integer: true, min: 1, describe: 'held-out test clips scored' },
  ...TRAINING_PARAMS,
  'mean-offset': { ...TRAINING_PARAMS['mean-offset'], default: true },
  // A short GAN run is noisy from one evaluation to the next; the average of G's weights is not.
  'g-average': { ...TRAINING_PARAMS['g-average'], default: 0.95 },
} satisfies ParamSpecs;

/** What a graph built on the demo may add to it. */
export interface DemoExtensions {
  /** Stages applied to every clean training clip before occlusion (held-out clips stay as generated). */
  readonly preprocess?: ReadonlyArray<Stage<Clip, Clip>>;
  /** Baselines scored beside the model (default: DINEOF, temporal interpolation, mean fill). */
  readonly baselines?: ReadonlyArray<readonly [string, Baseline]>;
}

export default defineGraph({
  name: 'demo',
  description: 'Synthetic clips under raindrops, inpainting GAN trained from scratch at a CPU preset',
  params: DEMO_PARAMS,
  parameters: (p) => parameterCounts({ base: p.base, channels: 1, frames: p.frames, height: p.size, width: p.size, extraBlock: p['extra-block'] }),
  build: (p, context) => buildDemo(p, context),
});

/** The demo's stage chain, with a graph's own extensions. */
export function buildDemo(p: ParamValues<typeof DEMO_PARAMS>, context: RunContext, extensions: DemoExtensions = {}): Observable<object> {
  const data = checkSyntheticOptions({ clips: p.clips, frames: p.frames, size: p.size, channels: 1, seed: p.seed });
  const train = Array.from({ length: data.clips }, (_, i) => i).filter((i) => syntheticSplit(data.seed, i) === 'train');
  const test = Array.from({ length: data.clips }, (_, i) => i).filter((i) => syntheticSplit(data.seed, i) === 'test');
  return trainAndReport(p, context, {
    title: 'st-inpaint demo: synthetic clips under raindrops',
    spec: syntheticSpec(data),
    occlusion: chooseOcclusion('raindrops', {}),
    clean: (start, count) =>
      (extensions.preprocess ?? []).reduce<Observable<Leased<Clip>>>(
        (clips, stage) => clips.pipe(stage),
        source('synthetic-train', function* () {
          for (const index of epochOrder(train, { seed: p.seed, start, count })) yield syntheticClip(data, index) as Clip;
        }),
      ),
    heldOut: async () => test.slice(0, p['eval-clips']).map((index) => syntheticClip(data, index)),
    baselines: extensions.baselines,
  });
}

// `npx tsx graphs/demo.ts [options]` runs it directly.
runIfMain(import.meta.url, 'demo');

/**
 * demo: the embedded synthetic set under raindrops, trained with the unsupervised inpainting GAN at
 * a CPU-sized preset. The clean clips exist only because the set is synthetic; training sees the
 * observed clips and their masks, nothing else. The chain, stage by stage, is in `build` below;
 * copy this file to change a stage (graphs/custom-stage-example.ts adds one).
 */
import { join } from 'node:path';
import { defineGraph, type ParamSpecs, type ParamValues } from '../pipeline/graph.ts';
import { source } from '../pipeline/operators/source.ts';
import { unwrap } from '../pipeline/operators/unwrap.ts';
import { checkSyntheticOptions, syntheticClip, syntheticSpec, syntheticSplit, type Split } from '../datasets/synthetic.ts';
import { epochOrder } from '../stages/batch/epochs.ts';
import { frameBatches } from '../stages/batch/frame-batches.ts';
import { evaluateModel } from '../stages/eval/evaluate-model.ts';
import { checkpoints } from '../stages/gan/checkpoints.ts';
import { parameterCounts } from '../stages/gan/networks.ts';
import { ganTrainer } from '../stages/gan/setup.ts';
import { trainGan } from '../stages/gan/train.ts';
import { chooseOcclusion } from '../stages/occlusion/index.ts';
import { occlude } from '../stages/occlusion/occlude.ts';
import { previews } from '../stages/sinks/previews.ts';
import { runReport } from '../stages/sinks/run-report.ts';
import { TRAINING_PARAMS, clipsToTrain, departures, trainingSettings } from './lib/training.ts';
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
  // An untrained G then starts at the interpolation baseline instead of far above the mean fill (docs/results.md).
  'interpolation-offset': { ...TRAINING_PARAMS['interpolation-offset'], default: true },
  // G then sees the clip it corrects (the interpolation) where the paper's G sees the fill value (docs/results.md).
  'interpolation-input': { ...TRAINING_PARAMS['interpolation-input'], default: true },
  // A short GAN run is noisy from one evaluation to the next; the average of G's weights is not.
  'g-average': { ...TRAINING_PARAMS['g-average'], default: 0.95 },
} satisfies ParamSpecs;

export default defineGraph({
  name: 'demo',
  description: 'Synthetic clips under raindrops, inpainting GAN trained from scratch at a CPU preset',
  params: DEMO_PARAMS,
  parameters: (p) => parameterCounts({ base: p.base, channels: 1, frames: p.frames, height: p.size, width: p.size, extraBlock: p['extra-block'] }),
  build(p, run) {
    const s = trainingSettings(p);
    const { data, spec, ids } = demoData(p);
    const raindrops = chooseOcclusion('raindrops', {});
    const saved = checkpoints(run, { every: s.checkpointEvery });
    // Held-out: the first test clips under the same occlusion, read when first evaluated.
    const heldOut = source('synthetic-test', function* () {
      for (const index of ids('test').slice(0, s.evalClips)) yield syntheticClip(data, index);
    }).pipe(occlude(raindrops, { seed: p.seed, spec, name: 'occlude-test' }));
    const train = ids('train');
    return source('synthetic-train', function* () {
      // Epoch after epoch, each in its own seeded order; a resumed run starts where its checkpoint left off.
      for (const index of epochOrder(train, { seed: p.seed, ...clipsToTrain(s, saved) })) yield syntheticClip(data, index);
    }).pipe(
      occlude(raindrops, { seed: p.seed, spec }),
      frameBatches(spec, s.gan.batch),
      trainGan({ createTrainer: ganTrainer(s.gan, raindrops, spec.shape, run.log), checkpoints: saved, log: run.log }),
      evaluateModel({ every: s.evalEvery, spec, heldOut, sample: { count: s.evalClips }, fidModel: s.fidModel, fvdModel: s.fvdModel, log: run.log }),
      previews(join(run.runDir, 'previews'), spec.shape),
      runReport({ runDir: run.runDir, title: 'st-inpaint demo: synthetic clips under raindrops', settings: p, notes: departures(s), distances: { fid: !!s.fidModel, fvd: !!s.fvdModel }, log: run.log }),
      unwrap(),
    );
  },
});

/** The demo's synthetic set at these settings: its options, its clips' spec, and the clip indices of a split. */
export function demoData(p: Pick<ParamValues<typeof DEMO_PARAMS>, 'clips' | 'frames' | 'size' | 'seed'>) {
  const data = checkSyntheticOptions({ clips: p.clips, frames: p.frames, size: p.size, channels: 1, seed: p.seed });
  const ids = (split: Split): number[] => Array.from({ length: data.clips }, (_, i) => i).filter((i) => syntheticSplit(data.seed, i) === split);
  return { data, spec: syntheticSpec(data), ids };
}

// `npx tsx graphs/demo.ts [options]` runs it directly.
runIfMain(import.meta.url, 'demo');

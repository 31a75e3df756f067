/**
 * The paper's KTH / raindrops experiment (method.md §8), and the chain every paper experiment runs:
 * the other `graphs/<dataset>-<occlusion>.ts` files call {@link paperExperiment} with their
 * dataset and occlusion. Copy this file to change a stage.
 *
 * dataset train split → shuffle (epochs, seeded buffer) → fit to the model's shape → occlude
 *   → Arrow frame batches → train (checkpoints every N, the authors' stopping rule) → evaluate
 *   every K on the test split, beside the baselines → previews → report.html
 *
 * The paper's supervised upper bounds put the clean clips in the batches too (the unpaired one
 * takes them from a second shuffle); its ablations change the networks only.
 */
import { join } from 'node:path';
import { defineGraph, type GraphDefinition, type ParamSpecs, type ParamValues } from '../pipeline/graph.ts';
import { unwrap } from '../pipeline/operators/unwrap.ts';
import { frameBatches } from '../stages/batch/frame-batches.ts';
import { shuffledEpochs } from '../stages/batch/shuffle.ts';
import { evaluateModel } from '../stages/eval/evaluate-model.ts';
import { fitClips } from '../stages/frames/fit.ts';
import { checkpoints } from '../stages/gan/checkpoints.ts';
import { ganTrainer, isSupervised } from '../stages/gan/setup.ts';
import { unpairedClean } from '../stages/batch/unpaired.ts';
import { trainGan } from '../stages/gan/train.ts';
import { chooseOcclusion } from '../stages/occlusion/index.ts';
import { occlude } from '../stages/occlusion/occlude.ts';
import { previews } from '../stages/sinks/previews.ts';
import { runReport } from '../stages/sinks/run-report.ts';
import { EXPERIMENT_PARAMS, experimentDescription, experimentParameters, openDataset, resolvePreset, type ExperimentDefinition, type ExperimentParams } from './lib/experiment.ts';
import { clipsToTrain, departures, trainingSettings } from './lib/training.ts';
import { runIfMain } from './lib/main.ts';

/** One of the paper's experiments as a graph: `e.dataset` under `e.occlusion`. */
export function paperExperiment<P extends ParamSpecs = {}>(e: ExperimentDefinition<P>): GraphDefinition<typeof EXPERIMENT_PARAMS & P> {
  const params = { ...EXPERIMENT_PARAMS, ...e.params } as typeof EXPERIMENT_PARAMS & P;
  const settings = (given: ParamValues<typeof EXPERIMENT_PARAMS & P>): ExperimentParams => resolvePreset(given, e.frames);
  return defineGraph({
    name: e.name,
    description: experimentDescription(e),
    params,
    parameters: (given) => experimentParameters(e, settings(given)),
    build(given, run) {
      const p = settings(given);
      const l1 = (given as { 'l1-weight'?: number })['l1-weight'];
      const s = trainingSettings(p, { ...(e.model && { model: e.model }), ...(l1 !== undefined && { l1Weight: l1 }) });
      const { train, test, native, spec } = openDataset(e.dataset, p, run);
      const occlusion = chooseOcclusion(e.occlusion, e.occlusionOptions?.(given) ?? {});
      const saved = checkpoints(run, { every: s.checkpointEvery });
      // Held-out: the test split at the model's shape under the same occlusion, sampled when first evaluated.
      const heldOut = test.pipe(fitClips('fit-test', native.shape, spec.shape), occlude(occlusion, { seed: p.seed, spec, name: 'occlude-test' }));
      const toTrain = clipsToTrain(s, saved);
      const observed = shuffledEpochs(train, { buffer: p.shuffle, seed: p.seed, ...toTrain, empty: `dataset "${e.dataset}": the train split is empty` }).pipe(
        fitClips('fit', native.shape, spec.shape),
        occlude(occlusion, { seed: p.seed, spec }),
      );
      // The unpaired model's discriminators see clean clips of a second shuffle, not the observations' own.
      const clean = () => shuffledEpochs(train, { buffer: p.shuffle, seed: p.seed + 1, start: toTrain.start, count: Infinity, name: 'shuffle-clean' }).pipe(fitClips('fit-clean', native.shape, spec.shape));
      return (e.model === 'unpaired' ? observed.pipe(unpairedClean(clean())) : observed).pipe(
        frameBatches(spec, s.gan.batch, { clean: isSupervised(e.model) }),
        trainGan({ createTrainer: ganTrainer(s.gan, occlusion, spec.shape, run.log), checkpoints: saved, stopBelow: s.stopBelow, log: run.log }),
        evaluateModel({ every: s.evalEvery, spec, heldOut, sample: { count: s.evalClips, seed: p.seed }, fidModel: s.fidModel, fvdModel: s.fvdModel, log: run.log }),
        previews(join(run.runDir, 'previews'), spec.shape),
        runReport({
          runDir: run.runDir,
          title: `st-inpaint ${e.name}: ${e.dataset} under ${e.occlusion}`,
          settings: { ...p, dataset: e.dataset, occlusion: e.occlusion },
          notes: departures(s),
          distances: { fid: !!s.fidModel, fvd: !!s.fvdModel },
          log: run.log,
        }),
        unwrap(),
      );
    },
  });
}

export default paperExperiment({ name: 'kth-raindrops', dataset: 'kth', occlusion: 'raindrops', frames: 35 });

// `npx tsx graphs/kth-raindrops.ts [options]` runs it directly.
runIfMain(import.meta.url, 'kth-raindrops');

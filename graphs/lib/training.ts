/**
 * What every training graph shares: the parameters it declares alike, their mapping from the
 * command line's spellings to the stages' camelCase settings (done once, here), the count of clean
 * clips a run trains on, and the report's notes on departures from the paper.
 */
import { BACKENDS } from '../../pipeline/backend.ts';
import type { ParamSpecs, ParamValues } from '../../pipeline/graph.ts';
import type { CheckpointPlan } from '../../stages/gan/checkpoints.ts';
import type { GanSettings, PaperModel } from '../../stages/gan/setup.ts';

/** The parameters every training graph declares alike (the demo's and the experiments' own come beside them). */
export const TRAINING_PARAMS = {
  'extra-block': { type: 'boolean', default: false, describe: "the generator of the paper's table, with its extra 16C → 16C residual block (off: the authors' code, which has no such block)" },
  'g-average': { type: 'number', default: 0, min: 0, max: 0.9999, describe: "β of a moving average of G's weights that fills the held-out clips and is checkpointed (0: off, the weights as trained)" },
  'mean-offset': { type: 'boolean', default: false, describe: "offset G's fill by each clip's visible mean, so that an untrained G starts at the mean fill (not in the paper; see the README)" },
  'interpolation-offset': { type: 'boolean', default: false, describe: "offset G's fill by each hidden pixel's temporal interpolation from its visible frames, so that an untrained G starts at the interpolation baseline (not in the paper; see the README)" },
  'interpolation-input': { type: 'boolean', default: false, describe: "with --interpolation-offset (ignored without it): G sees the observation with its hidden pixels interpolated in time instead of set to the fill value (not in the paper)" },
  'lr-decay': { type: 'number', default: 0.99, min: 0, max: 1, describe: 'multiply the learning rates by this every --lr-decay-every iterations (official code: 0.99 every 50)' },
  'lr-decay-every': { type: 'number', default: 50, integer: true, min: 1, describe: 'iterations between learning-rate decays' },
  backend: { type: 'string', default: 'auto', choices: BACKENDS, describe: 'compute backend' },
  'fid-model': { type: 'string', default: '', describe: 'a converted Inception-v3 tfjs graph model (folder or URL): FID of every method at the end' },
  'fvd-model': { type: 'string', default: '', describe: 'a converted I3D tfjs graph model (folder or URL): FVD of every method at the end' },
} satisfies ParamSpecs;

/** The command-line options every training graph has (with their graph's defaults). */
export type TrainingParams = Readonly<ParamValues<typeof TRAINING_PARAMS>> & {
  readonly steps: number;
  /** Passes over the train split at most (0 or absent: bounded by `steps` only). */
  readonly epochs?: number;
  /** The authors' stopping rule (0 or absent: never). */
  readonly 'stop-below'?: number;
  readonly batch: number;
  readonly base: number;
  readonly 'learning-rate': number;
  readonly 'd-learning-rate': number;
  readonly 'self-supervised': number;
  readonly seed: number;
  readonly 'checkpoint-every': number;
  readonly threads: number;
  readonly 'eval-every': number;
  readonly 'eval-clips': number;
};

/** A training run's settings, as the stages take them. */
export interface TrainingSettings {
  readonly gan: GanSettings;
  /** Iterations at most (0: no bound but the epochs). */
  readonly steps: number;
  /** Passes over the train split at most (0: no bound but the steps). */
  readonly epochs: number;
  /** Training stops once D's or G's loss is under this (0: never). */
  readonly stopBelow: number;
  readonly checkpointEvery: number;
  readonly evalEvery: number;
  readonly evalClips: number;
  /** Converted Inception-v3 / I3D graph models for FID / FVD at the end (absent: not computed). */
  readonly fidModel?: string;
  readonly fvdModel?: string;
}

/** @param model one of the paper's other models, from the graph (absent: the unsupervised one). */
export function trainingSettings(p: TrainingParams, model?: { readonly model?: PaperModel; readonly l1Weight?: number }): TrainingSettings {
  return {
    gan: {
      ...(model?.model && { model: model.model }),
      ...(model?.l1Weight !== undefined && { l1Weight: model.l1Weight }),
      backend: p.backend,
      threads: p.threads,
      batch: p.batch,
      base: p.base,
      extraBlock: p['extra-block'],
      meanOffset: p['mean-offset'],
      interpolationOffset: p['interpolation-offset'],
      interpolationInput: p['interpolation-input'],
      seed: p.seed,
      learningRate: p['learning-rate'],
      discriminatorLearningRate: p['d-learning-rate'],
      selfSupervised: p['self-supervised'],
      generatorAverage: p['g-average'],
      decay: p['lr-decay'],
      decayEvery: p['lr-decay-every'],
    },
    steps: p.steps,
    epochs: p.epochs ?? 0,
    stopBelow: Math.max(0, p['stop-below'] ?? 0),
    checkpointEvery: p['checkpoint-every'],
    evalEvery: p['eval-every'],
    evalClips: p['eval-clips'],
    ...(p['fid-model'] && { fidModel: p['fid-model'] }),
    ...(p['fvd-model'] && { fvdModel: p['fvd-model'] }),
  };
}

/**
 * The clean training clips a run reads: from the position its checkpoint had reached (0 for a new
 * run) to `steps × batch`, and within `epochs` passes over the split (whichever ends first).
 */
export function clipsToTrain(s: TrainingSettings, saved: CheckpointPlan): { start: number; count: number; epochs?: number } {
  const start = saved.resumeFrom?.position ?? 0;
  return { start, count: s.steps > 0 ? Math.max(0, s.steps * s.gan.batch - start) : Infinity, ...(s.epochs > 0 && { epochs: s.epochs }) };
}

const MODEL_NOTES: Readonly<Record<PaperModel, string>> = {
  paired: "this run trains the paper's paired supervised upper bound, not its unsupervised model: G sees observations and is trained with an L1 term to each one's clean clip (weight --l1-weight) plus the adversarial term; the discriminators compare clean clips with G's completions.",
  unpaired: "this run trains the paper's unpaired supervised upper bound, not its unsupervised model: the discriminators compare clean clips (from a second shuffle of the train split, not the observations' own) with G's completions; G sees observations only.",
  static: "this run trains the paper's static ablation: a 2D generator that fills each frame on its own, and no sequence discriminator D_s.",
  recurrent: "this run trains the paper's recurrent ablation: a ConvGRU generator that fills frame t from frames 1…t only (the architecture is this project's; the paper gives none).",
};

/** The report's sentences on what this run does that the paper's model does not. */
export function departures(s: TrainingSettings): string[] {
  const g = s.gan;
  return [
    ...(g.model ? [MODEL_NOTES[g.model]] : []),
    ...(g.selfSupervised > 0
      ? [`this run adds a self-supervised fill term that is not in the paper (weight ${g.selfSupervised}): G also fills observations hidden further by fresh masks and is scored on the observed pixels it had to fill. It uses no clean data; --self-supervised 0 trains the paper's model exactly.`]
      : []),
    ...(g.meanOffset
      ? ["G's fill is offset by each clip's visible mean (not in the paper): an untrained G fills close to the mean fill and training learns the departure from it. --mean-offset false gives the paper's generator."]
      : []),
    ...(g.interpolationOffset
      ? ["G's fill is offset by each hidden pixel's temporal interpolation from its visible frames (not in the paper): an untrained G fills close to the interpolation baseline and training learns the departure from it, from the observations only. --interpolation-offset false gives the paper's generator."]
      : []),
    ...(g.interpolationOffset && g.interpolationInput
      ? ["G sees the observation with its hidden pixels interpolated in time instead of set to the fill value (not in the paper, whose G sees the observation as it is). --interpolation-input false gives the paper's input."]
      : []),
    ...(g.generatorAverage > 0
      ? [`held-out clips are filled by a moving average of G's weights (β = ${g.generatorAverage}; not in the paper, which evaluates G as trained). --g-average 0 evaluates the weights as trained.`]
      : []),
  ];
}

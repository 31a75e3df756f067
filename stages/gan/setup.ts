/**
 * `ganTrainer`: makes the trainer a training stage runs, from the run's settings: it chooses the
 * backend, decides between one training thread and two data-parallel ones, prepares the occlusion
 * process whose fresh masks m̂ training draws, and builds the GAN at the clips' shape.
 */
import { availableParallelism } from 'node:os';
import { computesOnHost, describeSelection, selectBackend } from '../../pipeline/backend.ts';
import { UsageError } from '../../pipeline/errors.ts';
import type { ClipShape } from '../../pipeline/frame-batch.ts';
import type { OcclusionChoice } from '../occlusion/index.ts';
import { MaskSampler, fillValue } from '../occlusion/process.ts';
import { Random } from '../random.ts';
import { DataParallelTrainer } from './parallel.ts';
import type { Trainer } from './train.ts';
import { GanTrainer } from './trainer.ts';

/** The GAN's settings (the command line's options, in camelCase). */
export interface GanSettings {
  /** A name of `BACKENDS`, or `auto`. */
  readonly backend: string;
  /** Training threads on a CPU backend: 1, 2 (data-parallel), or 0 (2 when the machine has them and the batch allows). */
  readonly threads: number;
  readonly batch: number;
  /** Base width C of the networks. */
  readonly base: number;
  /** The paper's table's extra 16C → 16C block in G (the authors' code has none). */
  readonly extraBlock: boolean;
  /** G's fill offset by each clip's visible mean (not in the paper). */
  readonly meanOffset: boolean;
  /** G's fill offset by each pixel's temporal interpolation (not in the paper). */
  readonly interpolationOffset?: boolean;
  /** With the offset (ignored without it), G's input has its hidden pixels interpolated too (not in the paper). */
  readonly interpolationInput?: boolean;
  /** Seeds the weights and the fresh masks. */
  readonly seed: number;
  readonly learningRate: number;
  readonly discriminatorLearningRate: number;
  /** Weight of the self-supervised fill term (0: the paper's model). */
  readonly selfSupervised: number;
  /** β of the moving average of G's weights used for filling (0: off). */
  readonly generatorAverage: number;
  /** The learning rates are multiplied by `decay` every `decayEvery` iterations. */
  readonly decay: number;
  readonly decayEvery: number;
  /**
   * Which of the paper's models (absent: the unsupervised model of the paper's main tables):
   * the supervised upper bounds `paired` and `unpaired`, or the SST ablations `static` and `recurrent`.
   */
  readonly model?: PaperModel;
  /** Weight of the paired model's L1 term (default 100). */
  readonly l1Weight?: number;
}

/** The paper's models besides the main unsupervised one. */
export type PaperModel = 'paired' | 'unpaired' | 'static' | 'recurrent';

/** Whether a model trains on clean clips (batches then hold the clean clips after the observed ones). */
export const isSupervised = (model: PaperModel | undefined): model is 'paired' | 'unpaired' => model === 'paired' || model === 'unpaired';

/**
 * What can be refused before anything runs: a graph calls this when it is built (through
 * {@link ganTrainer}), so a bad combination ends the run with exit 2 before any data is read.
 * @throws UsageError naming the option.
 */
export function checkGanSettings(s: Pick<GanSettings, 'threads' | 'batch' | 'model' | 'meanOffset' | 'interpolationOffset' | 'selfSupervised'>, shape: ClipShape): void {
  if (s.meanOffset && s.interpolationOffset) throw new UsageError('--mean-offset and --interpolation-offset: choose one offset for G\'s fill');
  if (s.model === 'recurrent' && s.interpolationOffset) throw new UsageError('--interpolation-offset: the recurrent generator sees past frames only, and the interpolation looks at later ones');
  if (s.threads === 2 && s.batch < 2) throw new UsageError(`--threads 2 needs --batch of at least 2, got ${s.batch}`);
  if (s.threads === 2 && isSupervised(s.model)) throw new UsageError(`--threads 2: the ${s.model} model trains on one thread`);
  if (s.model === 'recurrent' && s.meanOffset) throw new UsageError("--mean-offset: the recurrent generator sees past frames only, and a clip's mean would show it future ones");
  if (isSupervised(s.model) && s.selfSupervised > 0) throw new UsageError(`--self-supervised: the ${s.model} model trains on clean clips and has no self-supervised term`);
  if (shape.height % 2 || shape.width % 2) throw new UsageError(`--size: frames of ${shape.height}×${shape.width}; the generator's self-attention pools 2×2, so height and width must be even`);
}

/**
 * @example
 * trainGan({ createTrainer: ganTrainer(settings, occlusion, spec.shape, run.log), checkpoints: … })
 * @returns a function making the trainer and a line naming its backend and threads.
 */
export function ganTrainer(s: GanSettings, occlusion: OcclusionChoice, shape: ClipShape, log?: (line: string) => void): () => Promise<{ trainer: Trainer; backend: string }> {
  checkGanSettings(s, shape);
  return async () => {
    const selection = await selectBackend(s.backend);
    const threads = s.threads === 0 ? (computesOnHost(selection.backend) && s.batch >= 2 && !isSupervised(s.model) && availableParallelism() >= 2 ? 2 : 1) : s.threads;
    const backend = `${describeSelection(selection)}; ${threads} training thread${threads === 2 ? 's (data-parallel)' : ''}`;
    log?.(backend);
    const drawer = await occlusion.process.prepare(occlusion.options as never, shape);
    if (drawer.note) log?.(drawer.note);
    const options = {
      config: {
        base: s.base,
        channels: shape.channels,
        frames: shape.frames,
        height: shape.height,
        width: shape.width,
        extraBlock: s.extraBlock,
        ...(s.meanOffset && { meanOffset: true }),
        ...(s.interpolationOffset && { interpolationOffset: true }),
        ...(s.interpolationOffset && s.interpolationInput && { interpolationInput: true }),
        ...((s.model === 'static' || s.model === 'recurrent') && { variant: s.model }),
      },
      ...(isSupervised(s.model) && { supervision: s.model, l1Weight: s.l1Weight ?? 100 }),
      seed: s.seed,
      fill: fillValue(occlusion.process, [-1, 1]),
      timeDependent: occlusion.process.timeDependent,
      sampler: new MaskSampler(drawer, shape, Random.fromKey(s.seed, 'fresh-masks')),
      learningRate: s.learningRate,
      discriminatorLearningRate: s.discriminatorLearningRate,
      selfSupervisedWeight: s.selfSupervised,
      generatorAverage: s.generatorAverage,
      decay: s.decay,
      decayEvery: s.decayEvery,
    };
    const trainer = threads === 2 ? await DataParallelTrainer.start(options, selection.backend) : new GanTrainer(options);
    return { trainer, backend };
  };
}

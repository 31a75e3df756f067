/**
 * `evaluateModel`: scores the model being trained on held-out clips every K steps and at the last
 * step, beside the classical baselines (computed once), as a stage over the training stage's
 * records: the whole test split streamed, or a seeded sample of it held in memory. The trainer waits while a record is held, so a step's evaluation sees exactly that
 * step's weights. At the last step it also computes FID / FVD of every method when their feature
 * models are given.
 *
 * Emits one {@link EvaluatedStep} per training step: the step's record without the model, and the
 * evaluation when there was one.
 */
import { defer } from 'rxjs';
import type { FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import type { ObservedClip } from '../occlusion/occlude.ts';
import { mapAsync } from '../../pipeline/operators/map-async.ts';
import { named, type Stage, type Stream } from '../../pipeline/stage.ts';
import { UsageError } from '../../pipeline/errors.ts';
import type { TrainRecord } from '../gan/train.ts';
import type { Baseline } from './baselines.ts';
import { HeldOutScorer, type HeldOutClip } from './evaluate.ts';
import { heldOutClips, heldOutStream } from './held-out.ts';
import { FeatureModel } from './features.ts';
import type { MetricRow } from './metrics.ts';

/** FID / FVD of each method against the clean clips: method → distance name → value. */
export type SetDistances = Record<string, Record<string, number>>;

/** Which held-out clips an evaluation scored. */
export interface EvaluationPopulation {
  /** Clips scored. */
  readonly scored: number;
  /** For a sample: the number of test clips it was drawn from, and its seed (absent: the first clips). */
  readonly sampledFrom?: number;
  readonly seed?: number;
}

export interface ModelEvaluation {
  readonly step: number;
  /** Method × metric, the model first. */
  readonly rows: MetricRow[];
  readonly sets?: SetDistances;
  readonly population: EvaluationPopulation;
  /** The first held-out clips and every method's fill of them, in the same order (for pictures). */
  readonly clips: readonly HeldOutClip[];
  readonly outputs: ReadonlyMap<string, readonly Float32Array[]>;
}

/** A training step as it leaves the evaluation: its record (no model), and its evaluation if any. */
export interface EvaluatedStep {
  readonly record: Omit<TrainRecord, 'model' | 'backend'>;
  /** The backend the run trains on, on a session's first step. */
  readonly backend?: string;
  readonly evaluation?: ModelEvaluation;
}

export interface EvaluateModelOptions {
  /** Evaluate every this many steps (0: only at the last); the last step always is, with FID / FVD when their models are given. */
  readonly every: number;
  /** Shape, pixel type and range of the held-out clips. */
  readonly spec: FrameBatchSpec;
  /** Observed held-out clips (the test split through the run's occlusion), read when first needed. */
  readonly heldOut: Stream<ObservedClip>;
  /**
   * How many of them are scored (0: all, streamed again at every evaluation, as the paper scores
   * the whole test split), and the seed of a uniform sample of them (absent: the first ones).
   */
  readonly sample: { readonly count: number; readonly seed?: number };
  /** Scored beside the model. Default: DINEOF, temporal interpolation, mean fill. */
  readonly baselines?: ReadonlyArray<readonly [string, Baseline]>;
  /** Converted Inception-v3 / I3D graph models (folder or URL). */
  readonly fidModel?: string;
  readonly fvdModel?: string;
  readonly log?: (line: string) => void;
}

/** How the report and the log name an evaluation's clips. */
export function describePopulation(p: EvaluationPopulation): string {
  const clips = (n: number): string => `${n} test clip${n === 1 ? '' : 's'}`;
  if (p.sampledFrom === undefined) return `the first ${clips(p.scored)}`;
  return p.scored >= p.sampledFrom ? `all ${clips(p.scored)}` : `a uniform sample of ${p.scored} of the ${clips(p.sampledFrom)} (seed ${p.seed})`;
}

/**
 * @example
 * records.pipe(evaluateModel({ every: 25, spec, heldOut: test.pipe(occlude(…)), sample: { count: 0 } }))
 */
export function evaluateModel(o: EvaluateModelOptions): Stage<TrainRecord, EvaluatedStep> {
  const name = 'evaluate';
  const shape = o.spec.shape;
  const whole = o.sample.count === 0;
  const info = { capacity: 1, params: { every: o.every, clips: whole ? 'all' : o.sample.count }, reads: [o.heldOut] };
  return named(
    name,
    (upstream) =>
      defer(() => {
        const scorer = new HeldOutScorer(shape, { ...(o.baselines && { baselines: o.baselines }) });
        // A sample is drawn once per subscription and held; the whole split is read again each time.
        let sample: Promise<{ clips: HeldOutClip[]; of?: number }> | undefined;
        const clips = async (): Promise<{ clips: AsyncIterable<HeldOutClip> | HeldOutClip[]; population: (scored: number) => EvaluationPopulation }> => {
          if (whole) return { clips: heldOutStream(o.heldOut, o.spec), population: (scored) => ({ scored, sampledFrom: scored }) };
          const drawn = await (sample ??= heldOutClips(o.heldOut, o.spec, { ...o.sample, log: o.log }));
          return { clips: drawn.clips, population: (scored) => ({ scored, ...(drawn.of !== undefined && { sampledFrom: drawn.of, seed: o.sample.seed }) }) };
        };
        let evaluated = 0;
        return upstream.pipe(
          mapAsync(
            name,
            async ({ model, backend, ...record }: TrainRecord): Promise<EvaluatedStep> => {
              const base = { record, ...(backend !== undefined && { backend }) };
              if (!record.last && !(o.every > 0 && record.step % o.every === 0)) return base;
              const load = async (location: string | undefined, kind: 'inception' | 'i3d') => (location ? FeatureModel.load(location, kind) : undefined);
              // Inception and I3D are heavy: their distances are computed once, at the end.
              const models = record.last ? { fid: await load(o.fidModel, 'inception'), fvd: await load(o.fvdModel, 'i3d') } : {};
              try {
                const { clips: held, population } = await clips();
                if (evaluated === 0) o.log?.(`evaluation: ${whole ? 'every test clip, streamed' : `at most ${o.sample.count} test clips`}; the baselines are scored on the first pass`);
                const result = await scorer.score(held, (y, m) => model.inpaint(y, m), models);
                if (result.count === 0) throw new UsageError('no held-out test clips to evaluate on (the test split is empty)');
                evaluated += 1;
                const scored = population(result.count);
                const mae = result.rows.find((r) => r.method === 'model')!.values.mae.mean;
                o.log?.(`evaluation at step ${record.step} on ${describePopulation(scored)}: model masked MAE ${mae.toFixed(4)}`);
                const sets = result.sets && Object.keys(result.sets).length > 0 ? result.sets : undefined;
                if (sets) o.log?.(`held-out ${Object.keys(Object.values(sets)[0] ?? {}).join(' and ').toUpperCase()}: ${Object.entries(sets).map(([m, v]) => `${m} ${Object.values(v).map((x) => x.toFixed(2)).join(' / ')}`).join(', ')}`);
                const evaluation: ModelEvaluation = { step: record.step, rows: result.rows, population: scored, clips: result.clips, outputs: result.outputs, ...(sets && { sets }) };
                return { ...base, evaluation };
              } finally {
                models.fid?.dispose();
                models.fvd?.dispose();
              }
            },
            { capacity: 1, describe: (r) => ({ index: r.step }) },
          ),
        );
      }),
    info,
  );
}

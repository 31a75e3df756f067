/**
 * `evaluateModel`: scores the model being trained on held-out clips every K steps and at the last
 * step, beside the classical baselines (computed once), as a stage over the training stage's
 * records. The trainer waits while a record is held, so a step's evaluation sees exactly that
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
import { BASELINES, type Baseline } from './baselines.ts';
import { HeldOutEvaluation, inpaintClips, type HeldOutClip } from './evaluate.ts';
import { heldOutClips } from './held-out.ts';
import { FeatureModel, setDistances } from './features.ts';
import type { MetricRow } from './metrics.ts';

/** FID / FVD of each method against the clean clips: method → distance name → value. */
export type SetDistances = Record<string, Record<string, number>>;

export interface ModelEvaluation {
  readonly step: number;
  /** Method × metric, the model first. */
  readonly rows: MetricRow[];
  readonly sets?: SetDistances;
  /** The held-out clips and every method's fill of them, in the same order (for pictures). */
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
  /** Evaluate every this many steps (0: only at the last). */
  readonly every: number;
  /** The run's last step: always evaluated, with FID / FVD when their models are given. */
  readonly lastStep: number;
  /** Shape, pixel type and range of the held-out clips. */
  readonly spec: FrameBatchSpec;
  /** Observed held-out clips (the test split through the run's occlusion), read when first needed. */
  readonly heldOut: Stream<ObservedClip>;
  /** How many of them are scored, and the seed of a uniform sample of them (absent: the first ones). */
  readonly sample: { readonly count: number; readonly seed?: number };
  /** Scored beside the model. Default: DINEOF, temporal interpolation, mean fill. */
  readonly baselines?: ReadonlyArray<readonly [string, Baseline]>;
  /** Converted Inception-v3 / I3D graph models (folder or URL). */
  readonly fidModel?: string;
  readonly fvdModel?: string;
  readonly log?: (line: string) => void;
}

/**
 * @example
 * records.pipe(evaluateModel({ every: 25, lastStep: 150, spec, heldOut: test.pipe(occlude(…)), sample: { count: 16 } }))
 */
export function evaluateModel(o: EvaluateModelOptions): Stage<TrainRecord, EvaluatedStep> {
  const name = 'evaluate';
  const shape = o.spec.shape;
  const due = (step: number): boolean => step === o.lastStep || (o.every > 0 && step % o.every === 0);
  const info = { capacity: 1, params: { every: o.every, lastStep: o.lastStep, clips: o.sample.count }, reads: [o.heldOut] };
  return named(
    name,
    (upstream) =>
      defer(() => {
        // The held-out clips and the baselines' scores, made once per subscription.
        let held: Promise<HeldOutEvaluation> | undefined;
        const heldOut = async (): Promise<HeldOutEvaluation> => {
          const clips: HeldOutClip[] = await heldOutClips(o.heldOut, o.spec, { ...o.sample, log: o.log });
          if (clips.length === 0) throw new UsageError('no held-out test clips to evaluate on (the test split is empty)');
          o.log?.(`evaluation: ${clips.length} held-out test clips; computing the baselines once`);
          return new HeldOutEvaluation(clips, shape, o.baselines ?? BASELINES);
        };
        return upstream.pipe(
          mapAsync(
            name,
            async ({ model, backend, ...record }: TrainRecord): Promise<EvaluatedStep> => {
              const base = { record, ...(backend !== undefined && { backend }) };
              if (!due(record.step)) return base;
              const h = await (held ??= heldOut());
              const result = h.score(await inpaintClips(h.clips, shape, (y, m) => model.inpaint(y, m)));
              const mae = result.rows.find((r) => r.method === 'model')!.values.mae.mean;
              o.log?.(`evaluation at step ${record.step}: model masked MAE ${mae.toFixed(4)}`);
              const evaluation: ModelEvaluation = { step: record.step, rows: result.rows, clips: h.clips, outputs: result.outputs };
              if (record.step !== o.lastStep || (!o.fidModel && !o.fvdModel)) return { ...base, evaluation };
              // Inception and I3D are heavy: their distances are computed once, at the end.
              const load = async (location: string | undefined, kind: 'inception' | 'i3d') => (location ? FeatureModel.load(location, kind) : undefined);
              const models = { fid: await load(o.fidModel, 'inception'), fvd: await load(o.fvdModel, 'i3d') };
              try {
                const sets = await setDistances(result.outputs, h.clips.map((c) => c.truth), shape, models);
                o.log?.(`held-out ${Object.keys(Object.values(sets)[0] ?? {}).join(' and ').toUpperCase()}: ${Object.entries(sets).map(([m, v]) => `${m} ${Object.values(v).map((x) => x.toFixed(2)).join(' / ')}`).join(', ')}`);
                return { ...base, evaluation: { ...evaluation, sets } };
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

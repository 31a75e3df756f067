/**
 * What every training graph shares once it has clean clips: occlude → Arrow frame batches →
 * train → every K iterations and at the end the model and the baselines on held-out clips →
 * previews, checkpoints and `report.html`. The demo and the paper's experiments differ only in
 * where their clean clips come from and in their settings.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Observable, from, mergeMap } from 'rxjs';
import { BACKENDS, computesOnHost, describeSelection, selectBackend } from '../../pipeline/backend.ts';
import { latestIntactCheckpoint, readCheckpointState } from '../../pipeline/checkpoint.ts';
import { FrameBatchPool, encodeFrameBatch, type Clip, type FrameBatchSpec } from '../../pipeline/frame-batch.ts';
import type { ParamSpecs, RunContext } from '../../pipeline/graph.ts';
import type { Leased } from '../../pipeline/credit.ts';
import { UsageError } from '../../pipeline/errors.ts';
import { batch } from '../../pipeline/operators/batch.ts';
import { unwrap } from '../../pipeline/operators/unwrap.ts';
import { trainGan, type Trainer } from '../../stages/gan/train.ts';
import { DataParallelTrainer } from '../../stages/gan/parallel.ts';
import { GanTrainer, type TrainerState } from '../../stages/gan/trainer.ts';
import type { OcclusionChoice } from '../../stages/occlusion/index.ts';
import { occlude } from '../../stages/occlusion/occlude.ts';
import { MaskSampler, applyMask, clipRandom, fillValue } from '../../stages/occlusion/process.ts';
import { Random } from '../../stages/random.ts';
import { HeldOutEvaluation, inpaintClips, toUnit, type HeldOutClip } from '../../stages/eval/evaluate.ts';
import { BASELINES, type Baseline } from '../../stages/eval/baselines.ts';
import { FeatureModel, setDistances } from '../../stages/eval/features.ts';

type SetDistances = Record<string, Record<string, number>>;
import type { MetricRow } from '../../stages/eval/metrics.ts';
import { metricsText, verdict, writeReport, type ReportInput } from '../../stages/sinks/report.ts';
import { maskRow, stripPng, writeStrip } from '../../stages/sinks/png-strip.ts';

/** The parameters every training graph declares alike (the demo's and the experiments' own come beside them). */
export const TRAINING_PARAMS = {
  'extra-block': { type: 'boolean', default: false, describe: "the generator of the paper's table, with its extra 16C → 16C residual block (off: the authors' code, which has no such block)" },
  'g-average': { type: 'number', default: 0, min: 0, max: 0.9999, describe: "β of a moving average of G's weights that fills the held-out clips and is checkpointed (0: off, the weights as trained)" },
  'mean-offset': { type: 'boolean', default: false, describe: "offset G's fill by each clip's visible mean, so that an untrained G starts at the mean fill (not in the paper; see the README)" },
  'lr-decay': { type: 'number', default: 0.99, min: 0, max: 1, describe: 'multiply the learning rates by this every --lr-decay-every iterations (official code: 0.99 every 50)' },
  'lr-decay-every': { type: 'number', default: 50, integer: true, min: 1, describe: 'iterations between learning-rate decays' },
  backend: { type: 'string', default: 'auto', choices: BACKENDS, describe: 'compute backend' },
  'fid-model': { type: 'string', default: '', describe: 'a converted Inception-v3 tfjs graph model (folder or URL): FID of every method at the end' },
  'fvd-model': { type: 'string', default: '', describe: 'a converted I3D tfjs graph model (folder or URL): FVD of every method at the end' },
} satisfies ParamSpecs;

/** The settings every training graph has (as CLI options, with their graph's defaults). */
export interface TrainingSettings {
  readonly steps: number;
  readonly batch: number;
  readonly base: number;
  readonly 'learning-rate': number;
  readonly 'd-learning-rate': number;
  readonly 'self-supervised': number;
  /** The paper's table's extra 16C → 16C block in G (the authors' code has none). */
  readonly 'extra-block'?: boolean;
  /** β of the moving average of G's weights used for filling (0: off). */
  readonly 'g-average'?: number;
  /** G's fill offset by each clip's visible mean (GanConfig.meanOffset). */
  readonly 'mean-offset'?: boolean;
  readonly 'lr-decay': number;
  readonly 'lr-decay-every': number;
  readonly backend: string;
  readonly seed: number;
  readonly 'checkpoint-every': number;
  readonly threads: number;
  readonly 'eval-every': number;
  readonly 'eval-clips': number;
  /** Converted Inception-v3 / I3D graph models (folder or URL) for FID / FVD at the final evaluation; '' leaves them out. */
  readonly 'fid-model'?: string;
  readonly 'fvd-model'?: string;
}

export interface TrainingPlan {
  /** The report's heading. */
  readonly title: string;
  /** Shape, pixel type and range of the clean clips the model trains on. */
  readonly spec: FrameBatchSpec;
  readonly occlusion: OcclusionChoice;
  /**
   * `count` clean training clips from stream position `start` (a resumed run starts where its
   * checkpoint left off: the same clips an uninterrupted run would have seen from there).
   */
  readonly clean: (start: number, count: number) => Observable<Leased<Clip>>;
  /** Clean held-out clips (at most `eval-clips` of them), in the model's shape. */
  readonly heldOut: () => Promise<readonly Clip[]>;
  /** Baselines scored beside the model (default: DINEOF, temporal interpolation, mean fill). */
  readonly baselines?: ReadonlyArray<readonly [string, Baseline]>;
  /** Settings shown in the report besides the graph's parameters. */
  readonly settings?: Readonly<Record<string, unknown>>;
}

/** Where a resumed run left off: the clips its newest checkpoint had consumed. */
function resumePosition({ runDir, resume }: Pick<RunContext, 'runDir' | 'resume'>): number {
  // The same checkpoint the training stage restores: the newest intact one.
  const latest = resume ? latestIntactCheckpoint(join(runDir, 'checkpoints')) : undefined;
  return latest ? readCheckpointState<TrainerState>(latest.path).state.position : 0;
}

/** Observed held-out clips in [0, 1] with their clean pixels, under the run's occlusion. */
export async function observeHeldOut(clips: readonly Clip[], spec: FrameBatchSpec, { process, options }: OcclusionChoice, seed: number): Promise<HeldOutClip[]> {
  const drawer = await process.prepare(options as never, spec.shape);
  const fill = fillValue(process, spec.range);
  return clips.map((clip) => {
    const mask = drawer.draw(clipRandom(seed, clip.id, process.name, options));
    return { id: clip.id, mask, observed: toUnit(applyMask(clip.frames, mask, spec.shape.channels, fill), spec.range), truth: toUnit(clip.frames, spec.range) };
  });
}

/** The stage chain from clean clips to the report; emits step and evaluation records. */
export function trainAndReport(p: TrainingSettings, { runDir, log, resume }: RunContext, plan: TrainingPlan): Observable<object> {
  const { spec, occlusion } = plan;
  const shape = spec.shape;
  const checkpoints = join(runDir, 'checkpoints');
  const start = resumePosition({ runDir, resume });
  const pool = new FrameBatchPool();

  let backendLine = '';
  const createTrainer = async (): Promise<Trainer> => {
    const selection = await selectBackend(p.backend);
    const threads = p.threads === 0 ? (computesOnHost(selection.backend) && p.batch >= 2 && availableParallelism() >= 2 ? 2 : 1) : p.threads;
    if (threads === 2 && p.batch < 2) throw new UsageError(`--threads 2 needs --batch of at least 2, got ${p.batch}`);
    backendLine = `${describeSelection(selection)}; ${threads} training thread${threads === 2 ? 's (data-parallel)' : ''}`;
    log(backendLine);
    const drawer = await occlusion.process.prepare(occlusion.options as never, shape);
    if (drawer.note) log(drawer.note);
    const options = {
      config: { base: p.base, channels: shape.channels, frames: shape.frames, height: shape.height, width: shape.width, extraBlock: p['extra-block'] ?? false, ...(p['mean-offset'] && { meanOffset: true }) },
      seed: p.seed,
      fill: fillValue(occlusion.process, [-1, 1]),
      timeDependent: occlusion.process.timeDependent,
      sampler: new MaskSampler(drawer, shape, Random.fromKey(p.seed, 'fresh-masks')),
      learningRate: p['learning-rate'],
      discriminatorLearningRate: p['d-learning-rate'],
      selfSupervisedWeight: p['self-supervised'],
      generatorAverage: p['g-average'] ?? 0,
      decay: p['lr-decay'],
      decayEvery: p['lr-decay-every'],
    };
    return threads === 2 ? DataParallelTrainer.start(options, selection.backend) : new GanTrainer(options);
  };

  // Held-out clips under the same occlusion; the baselines are scored once.
  let heldOut: HeldOutEvaluation | undefined;
  const heldOutClips = async (): Promise<HeldOutEvaluation> => {
    if (heldOut) return heldOut;
    const clips = await observeHeldOut(await plan.heldOut(), spec, occlusion, p.seed);
    if (clips.length === 0) throw new UsageError('no held-out test clips to evaluate on (the test split is empty)');
    log(`evaluation: ${clips.length} held-out test clips; computing the baselines once`);
    return (heldOut = new HeldOutEvaluation(clips, shape, plan.baselines ?? BASELINES));
  };
  let pictures: ReportInput['pictures'] = [];
  const evaluate = async (trainer: Trainer, record: { step: number }): Promise<{ rows: MetricRow[]; sets?: SetDistances } | undefined> => {
    const every = p['eval-every'];
    if (record.step !== p.steps && (every === 0 || record.step % every !== 0)) return undefined;
    const held = await heldOutClips();
    const result = held.score(await inpaintClips(held.clips, shape, (y, m) => trainer.inpaint(y, m)));
    // Pictures of the first clips: observed, mask, model, baselines, truth.
    const unit = [0, 1] as const;
    pictures = await Promise.all(
      held.clips.slice(0, 4).map(async (c, i) => {
        const rows = [{ pixels: c.observed, range: unit }, maskRow(c.mask), ...[...result.outputs.values()].map((o) => ({ pixels: o[i]!, range: unit })), { pixels: c.truth, range: unit }];
        const png = await stripPng(rows, shape);
        return { caption: `${c.id}: observed, mask, ${[...result.outputs.keys()].join(', ')}, truth`, png };
      }),
    );
    await writeStrip(join(runDir, 'previews', `step-${record.step}.png`), [{ pixels: held.clips[0]!.observed, range: unit }, { pixels: result.outputs.get('model')![0]!, range: unit }, { pixels: held.clips[0]!.truth, range: unit }], shape);
    const model = result.rows.find((r) => r.method === 'model')!;
    log(`evaluation at step ${record.step}: model masked MAE ${model.values.mae.mean.toFixed(4)}`);
    // FID and FVD of every method against the clean clips, once, at the end (Inception and I3D are heavy).
    if (record.step === p.steps && (p['fid-model'] || p['fvd-model'])) {
      const load = async (location: string | undefined, kind: 'inception' | 'i3d') => (location ? FeatureModel.load(location, kind) : undefined);
      const models = { fid: await load(p['fid-model'], 'inception'), fvd: await load(p['fvd-model'], 'i3d') };
      try {
        const sets = await setDistances(result.outputs, held.clips.map((c) => c.truth), shape, models);
        log(`held-out ${Object.keys(Object.values(sets)[0] ?? {}).join(' and ').toUpperCase()}: ${Object.entries(sets).map(([m, v]) => `${m} ${Object.values(v).map((x) => x.toFixed(2)).join(' / ')}`).join(', ')}`);
        return { rows: result.rows, sets };
      } finally {
        models.fid?.dispose();
        models.fvd?.dispose();
      }
    }
    return { rows: result.rows };
  };

  // The report covers the whole run: records of an earlier session of it (before --resume)
  // come from its metrics file.
  const started = performance.now();
  const earlier = readRecords(join(runDir, 'metrics.jsonl'));
  const steps = earlier.steps;
  const evaluations = earlier.evaluations;
  const report = async (): Promise<void> => {
    const path = join(runDir, 'report.html');
    await writeReport(path, {
      title: plan.title,
      runDir,
      backend: backendLine || 'backend not started',
      settings: { ...p, ...plan.settings },
      steps,
      evaluations,
      pictures,
      elapsedSeconds: (performance.now() - started) / 1000,
      distances: { fid: Boolean(p['fid-model']), fvd: Boolean(p['fvd-model']) },
      notes: [
        ...(p['self-supervised'] > 0
          ? [`this run adds a self-supervised fill term that is not in the paper (weight ${p['self-supervised']}): G also fills observations hidden further by fresh masks and is scored on the observed pixels it had to fill. It uses no clean data; --self-supervised 0 trains the paper's model exactly.`]
          : []),
        ...(p['mean-offset']
          ? ["G's fill is offset by each clip's visible mean (not in the paper): an untrained G fills close to the mean fill and training learns the departure from it. --mean-offset false gives the paper's generator."]
          : []),
        ...((p['g-average'] ?? 0) > 0
          ? [`held-out clips are filled by a moving average of G's weights (β = ${p['g-average']}; not in the paper, which evaluates G as trained). --g-average 0 evaluates the weights as trained.`]
          : []),
      ],
    });
    const last = evaluations[evaluations.length - 1];
    if (last) log(`held-out metrics at step ${last.step}:\n${metricsText(last.rows)}\n${verdict(last.rows)}`);
    log(`report: ${path}`);
  };

  return plan.clean(start, Math.max(0, p.steps * p.batch - start)).pipe(
    occlude(occlusion, { seed: p.seed, spec }),
    batch('batch-clips', p.batch, (clips: Clip[]) => encodeFrameBatch(spec, clips, pool), { recycle: (b) => pool.recycle(b) }),
    trainGan({ createTrainer, checkpoints, checkpointEvery: p['checkpoint-every'], resume, log, evaluate }),
    unwrap(),
    mergeMap(({ evaluation, ...record }) => {
      steps.push({ step: record.step, lossG: record.lossG, lossD: record.lossD, lossSelf: record.lossSelf });
      const out: object[] = [{ type: 'step', ...record }];
      if (evaluation) {
        const { rows, sets } = evaluation as { rows: MetricRow[]; sets?: SetDistances };
        const e = { step: record.step, rows, ...(sets && { sets }) };
        evaluations.push(e);
        out.push({ type: 'evaluation', ...e });
      }
      return from(out);
    }),
    (records) =>
      new Observable<object>((subscriber) =>
        records.subscribe({
          next: (r) => subscriber.next(r),
          error: (err: unknown) => subscriber.error(err),
          // The report is written once the last record has passed, before the run ends.
          complete: () => void report().then(() => subscriber.complete(), (err: unknown) => subscriber.error(err)),
        }),
      ),
  );
}

type StepPoint = ReportInput['steps'][number];

/** Step and evaluation records already in a run's metrics file (an earlier session of a resumed run). */
function readRecords(path: string): { steps: StepPoint[]; evaluations: Array<{ step: number; rows: MetricRow[]; sets?: SetDistances }> } {
  const steps: StepPoint[] = [];
  const evaluations: Array<{ step: number; rows: MetricRow[]; sets?: SetDistances }> = [];
  if (!existsSync(path)) return { steps, evaluations };
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as { type?: string; step?: number; lossG?: number; lossD?: number; lossSelf?: number; rows?: MetricRow[]; sets?: SetDistances };
      if (r.type === 'step' && typeof r.step === 'number') steps.push({ step: r.step, lossG: r.lossG ?? NaN, lossD: r.lossD ?? NaN, lossSelf: r.lossSelf ?? 0 });
      if (r.type === 'evaluation' && typeof r.step === 'number' && r.rows) evaluations.push({ step: r.step, rows: r.rows, ...(r.sets && { sets: r.sets }) });
    } catch {
      // A torn last line of a crashed session: the records before it still count.
    }
  }
  return { steps, evaluations };
}

/**
 * demo: the embedded synthetic set under raindrops, trained with the unsupervised inpainting GAN at
 * a CPU-sized preset. The clean clips exist only because the set is synthetic; training sees the
 * observed clips and their masks, nothing else.
 *
 * synthetic train split (epochs, seeded shuffle) → occlude raindrops → Arrow frame batches → train
 *   → every K iterations and at the end: the model and the baselines (DINEOF, temporal
 *     interpolation, mean fill) on held-out test clips → runs/demo/<id>/report.html
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Observable, from, mergeMap } from 'rxjs';
import { describeSelection, selectBackend, BACKENDS } from '../pipeline/backend.ts';
import { latestCheckpoint, readCheckpointState } from '../pipeline/checkpoint.ts';
import { FrameBatchPool, encodeFrameBatch, type Clip } from '../pipeline/frame-batch.ts';
import { defineGraph, type ParamSpecs, type ParamValues, type RunContext } from '../pipeline/graph.ts';
import type { Stage } from '../pipeline/stage.ts';
import type { Leased } from '../pipeline/credit.ts';
import { UsageError } from '../pipeline/errors.ts';
import { batch } from '../pipeline/operators/batch.ts';
import { source } from '../pipeline/operators/source.ts';
import { unwrap } from '../pipeline/operators/unwrap.ts';
import { checkSyntheticOptions, syntheticClip, syntheticSpec, syntheticSplit } from '../datasets/synthetic.ts';
import { epochOrder } from '../stages/batch/epochs.ts';
import { trainGan, type Trainer } from '../stages/gan/train.ts';
import { DataParallelTrainer } from '../stages/gan/parallel.ts';
import { parameterCounts } from '../stages/gan/networks.ts';
import { GanTrainer, type TrainerState } from '../stages/gan/trainer.ts';
import { chooseOcclusion } from '../stages/occlusion/index.ts';
import { occlude } from '../stages/occlusion/occlude.ts';
import { MaskSampler, fillValue } from '../stages/occlusion/process.ts';
import { Random } from '../stages/random.ts';
import { HeldOutEvaluation, inpaintClips, toUnit, type HeldOutClip } from '../stages/eval/evaluate.ts';
import { BASELINES, type Baseline } from '../stages/eval/baselines.ts';
import type { MetricRow } from '../stages/eval/metrics.ts';
import { metricsText, writeReport, type ReportInput } from '../stages/sinks/report.ts';
import { maskRow, stripPng, writeStrip } from '../stages/sinks/png-strip.ts';
import { applyMask, clipRandom } from '../stages/occlusion/process.ts';

/** The demo's parameters (also those of graphs built on it, such as custom-stage-example). */
export const DEMO_PARAMS = {
  steps: { type: 'number', default: 150, integer: true, min: 1, describe: 'training iterations (one G step and two D steps each)' },
  batch: { type: 'number', default: 4, integer: true, min: 1, describe: 'clips per iteration' },
  clips: { type: 'number', default: 256, integer: true, min: 8, describe: 'synthetic clips in all splits' },
  frames: { type: 'number', default: 8, integer: true, min: 2, describe: 'frames per clip' },
  size: { type: 'number', default: 32, integer: true, min: 8, describe: 'frame height and width (even)' },
  base: { type: 'number', default: 4, integer: true, min: 1, describe: 'base width C of the networks (paper: 32)' },
  'learning-rate': { type: 'number', default: 1e-4, min: 0, describe: 'Adam learning rate of G (decays ×0.99 every 50 steps)' },
  'd-learning-rate': { type: 'number', default: 1e-4, min: 0, describe: "the discriminators' learning rate (paper: the same as G's; a larger one is a two time-scale update)" },
  backend: { type: 'string', default: 'auto', choices: BACKENDS, describe: 'compute backend' },
  seed: { type: 'number', default: 1, integer: true, min: 0, describe: 'seed of data, masks and weights' },
  'checkpoint-every': { type: 'number', default: 25, integer: true, min: 0, describe: 'checkpoint every N steps (and at the end; 0: only at the end)' },
  threads: { type: 'number', default: 0, integer: true, min: 0, max: 2, describe: 'training threads on a CPU backend (2: data-parallel over two cores; 0: 2 when the machine has them and the batch allows)' },
  'eval-every': { type: 'number', default: 25, integer: true, min: 0, describe: 'score model and baselines on held-out clips every N steps (and at the end; 0: only at the end)' },
  'eval-clips': { type: 'number', default: 16, integer: true, min: 1, describe: 'held-out test clips scored' },
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
  describe(p) {
    return {
      stages: ['synthetic-train', 'occlude-raindrops', 'batch-clips', 'train-gan', 'evaluate-held-out', 'report'],
      parameters: parameterCounts({ base: p.base, channels: 1, frames: p.frames, height: p.size, width: p.size, extraBlock: false }),
    };
  },
  build: (p, context) => buildDemo(p, context),
});

/** The demo's stage chain, with a graph's own extensions. */
export function buildDemo(p: ParamValues<typeof DEMO_PARAMS>, { runDir, log, resume }: RunContext, extensions: DemoExtensions = {}): Observable<object> {
    const data = checkSyntheticOptions({ clips: p.clips, frames: p.frames, size: p.size, channels: 1, seed: p.seed });
    const spec = syntheticSpec(data);
    const shape = spec.shape;
    const occlusion = chooseOcclusion('raindrops', {});
    const checkpoints = join(runDir, 'checkpoints');
    const latest = resume ? latestCheckpoint(checkpoints) : undefined;
    const start = latest ? readCheckpointState<TrainerState>(latest.path).state.position : 0;
    const total = p.steps * p.batch;
    const train = Array.from({ length: data.clips }, (_, i) => i).filter((i) => syntheticSplit(data.seed, i) === 'train');
    const pool = new FrameBatchPool();

    let backendLine = '';
    const createTrainer = async (): Promise<Trainer> => {
      const selection = await selectBackend(p.backend);
      const cpuBackend = selection.backend === 'wasm' || selection.backend === 'cpu';
      const threads = p.threads === 0 ? (cpuBackend && p.batch >= 2 && availableParallelism() >= 2 ? 2 : 1) : p.threads;
      if (threads === 2 && p.batch < 2) throw new UsageError(`--threads 2 needs --batch of at least 2, got ${p.batch}`);
      backendLine = `${describeSelection(selection)}; ${threads} training thread${threads === 2 ? 's (data-parallel)' : ''}`;
      log(backendLine);
      const drawer = await occlusion.process.prepare(occlusion.options as never, shape);
      const options = {
        config: { base: p.base, channels: shape.channels, frames: shape.frames, height: shape.height, width: shape.width, extraBlock: false },
        seed: p.seed,
        fill: fillValue(occlusion.process, [-1, 1]),
        timeDependent: occlusion.process.timeDependent,
        sampler: new MaskSampler(drawer, shape, Random.fromKey(p.seed, 'fresh-masks')),
        learningRate: p['learning-rate'],
        discriminatorLearningRate: p['d-learning-rate'],
      };
      return threads === 2 ? DataParallelTrainer.start(options, selection.backend) : new GanTrainer(options);
    };

    // Held-out clips: the test split under the same occlusion, with their clean pixels.
    let heldOut: HeldOutEvaluation | undefined;
    const heldOutClips = async (): Promise<HeldOutEvaluation> => {
      if (heldOut) return heldOut;
      const drawer = await occlusion.process.prepare(occlusion.options as never, shape);
      const fill = fillValue(occlusion.process, spec.range);
      const test = Array.from({ length: data.clips }, (_, i) => i).filter((i) => syntheticSplit(data.seed, i) === 'test').slice(0, p['eval-clips']);
      const clips: HeldOutClip[] = test.map((index) => {
        const clip = syntheticClip(data, index);
        const mask = drawer.draw(clipRandom(p.seed, clip.id, occlusion.process.name, occlusion.options));
        return { id: clip.id, mask, observed: toUnit(applyMask(clip.frames, mask, shape.channels, fill), spec.range), truth: toUnit(clip.frames, spec.range) };
      });
      log(`evaluation: ${clips.length} held-out test clips; computing the baselines once`);
      return (heldOut = new HeldOutEvaluation(clips, shape, extensions.baselines ?? BASELINES));
    };
    let pictures: ReportInput['pictures'] = [];
    const evaluate = async (trainer: Trainer, record: { step: number }): Promise<{ rows: MetricRow[] } | undefined> => {
      const every = p['eval-every'];
      if (record.step !== p.steps && (every === 0 || record.step % every !== 0)) return undefined;
      const held = await heldOutClips();
      const result = held.score(inpaintClips(held.clips, shape, (y, m) => trainer.inpaint(y, m)));
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
        title: 'st-inpaint demo: synthetic clips under raindrops',
        runDir,
        backend: backendLine || 'backend not started',
        settings: { ...p },
        steps,
        evaluations,
        pictures,
        elapsedSeconds: (performance.now() - started) / 1000,
      });
      const last = evaluations[evaluations.length - 1];
      if (last) log(`held-out metrics at step ${last.step}:\n${metricsText(last.rows)}`);
      log(`report: ${path}`);
    };

    const clean = (extensions.preprocess ?? []).reduce<Observable<Leased<Clip>>>(
      (clips, stage) => clips.pipe(stage),
      source('synthetic-train', function* () {
        for (const index of epochOrder(train, { seed: p.seed, start, count: Math.max(0, total - start) })) yield syntheticClip(data, index) as Clip;
      }),
    );
    return clean.pipe(
      occlude(occlusion, { seed: p.seed, spec }),
      batch('batch-clips', p.batch, (clips: Clip[]) => encodeFrameBatch(spec, clips, pool), { recycle: (b) => pool.recycle(b) }),
      trainGan({ createTrainer, checkpoints, checkpointEvery: p['checkpoint-every'], resume, log, evaluate }),
      unwrap(),
      mergeMap(({ evaluation, ...record }) => {
        steps.push({ step: record.step, lossG: record.lossG, lossD: record.lossD });
        const out: object[] = [{ type: 'step', ...record }];
        if (evaluation) {
          const e = { step: record.step, rows: (evaluation as { rows: MetricRow[] }).rows };
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

/** Step and evaluation records already in a run's metrics file (an earlier session of a resumed run). */
function readRecords(path: string): { steps: Array<{ step: number; lossG: number; lossD: number }>; evaluations: Array<{ step: number; rows: MetricRow[] }> } {
  const steps: Array<{ step: number; lossG: number; lossD: number }> = [];
  const evaluations: Array<{ step: number; rows: MetricRow[] }> = [];
  if (!existsSync(path)) return { steps, evaluations };
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as { type?: string; step?: number; lossG?: number; lossD?: number; rows?: MetricRow[] };
      if (r.type === 'step' && typeof r.step === 'number') steps.push({ step: r.step, lossG: r.lossG ?? NaN, lossD: r.lossD ?? NaN });
      if (r.type === 'evaluation' && typeof r.step === 'number' && r.rows) evaluations.push({ step: r.step, rows: r.rows });
    } catch {
      // A torn last line of a crashed session: the records before it still count.
    }
  }
  return { steps, evaluations };
}

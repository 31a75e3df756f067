/**
 * custom-stage-example: the demo with two things a user wrote, composed into it.
 *
 * 1. A stage: `mirror`, a seeded augmentation that flips half of the training clips left to right
 *    before they are occluded. It is an ordinary `map` stage (bounded, metered, named in errors).
 * 2. A baseline: `temporal-median`, which fills each hidden pixel with the median of that pixel's
 *    visible values over the clip, scored beside the model and the built-in baselines.
 *
 * Runs as `st-inpaint run custom-stage-example` or `npx tsx graphs/custom-stage-example.ts`.
 */
import { join } from 'node:path';
import { defineGraph } from '../pipeline/graph.ts';
import { map } from '../pipeline/operators/map.ts';
import { source } from '../pipeline/operators/source.ts';
import { unwrap } from '../pipeline/operators/unwrap.ts';
import type { Clip } from '../pipeline/frame-batch.ts';
import { syntheticClip } from '../datasets/synthetic.ts';
import { epochOrder } from '../stages/batch/epochs.ts';
import { frameBatches } from '../stages/batch/frame-batches.ts';
import { BASELINES, meanFill, type Baseline } from '../stages/eval/baselines.ts';
import { evaluateModel } from '../stages/eval/evaluate-model.ts';
import { checkpoints } from '../stages/gan/checkpoints.ts';
import { ganTrainer } from '../stages/gan/setup.ts';
import { trainGan } from '../stages/gan/train.ts';
import { chooseOcclusion } from '../stages/occlusion/index.ts';
import { occlude } from '../stages/occlusion/occlude.ts';
import { previews } from '../stages/sinks/previews.ts';
import { runReport } from '../stages/sinks/run-report.ts';
import { Random } from '../stages/random.ts';
import demo, { DEMO_PARAMS, demoData } from './demo.ts';
import { clipsToTrain, departures, trainingSettings } from './lib/training.ts';
import { runIfMain } from './lib/main.ts';

/** Flips a clip (T·H·W·C, channel-last) left to right when its seeded coin says so. */
export function mirror(seed: number, width: number, channels: number) {
  return map('mirror', (clip: Clip): Clip => {
    if (Random.fromKey('mirror', seed, clip.id).uniform(0, 1) < 0.5) return clip;
    const frames = clip.frames.slice();
    const rows = frames.length / (width * channels);
    for (let r = 0; r < rows; r++) {
      for (let x = 0; x < width; x++) {
        for (let c = 0; c < channels; c++) frames[(r * width + x) * channels + c] = clip.frames[(r * width + (width - 1 - x)) * channels + c]!;
      }
    }
    return { ...clip, frames };
  });
}

/** Each hidden value: the median of its pixel's visible values over time (mean fill where never seen). */
export const temporalMedian: Baseline = (observed, mask, g) => {
  const n = g.height * g.width;
  const out = meanFill(observed, mask, g);
  const seen: number[] = [];
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < g.channels; c++) {
      seen.length = 0;
      for (let t = 0; t < g.frames; t++) if (mask[t * n + p]) seen.push(observed[(t * n + p) * g.channels + c]!);
      if (seen.length === 0) continue;
      seen.sort((a, b) => a - b);
      const mid = seen.length >> 1;
      const median = seen.length % 2 ? seen[mid]! : (seen[mid - 1]! + seen[mid]!) / 2;
      for (let t = 0; t < g.frames; t++) if (!mask[t * n + p]) out[(t * n + p) * g.channels + c] = median;
    }
  }
  return out;
};

/** The demo's chain (graphs/demo.ts) with `mirror` between the clean clips and the occlusion, and one more baseline. */
const graph = defineGraph({
  name: 'custom-stage-example',
  description: 'The demo plus a user-written augmentation stage and an extra baseline (temporal median)',
  params: DEMO_PARAMS,
  parameters: (p) => demo.parameters!(p),
  build(p, run) {
    const s = trainingSettings(p);
    const { data, spec, ids } = demoData(p);
    const raindrops = chooseOcclusion('raindrops', {});
    const saved = checkpoints(run, { every: s.checkpointEvery });
    const heldOut = source('synthetic-test', function* () {
      for (const index of ids('test').slice(0, s.evalClips)) yield syntheticClip(data, index);
    }).pipe(occlude(raindrops, { seed: p.seed, spec, name: 'occlude-test' }));
    const train = ids('train');
    return source('synthetic-train', function* () {
      for (const index of epochOrder(train, { seed: p.seed, ...clipsToTrain(s, saved) })) yield syntheticClip(data, index);
    }).pipe(
      mirror(p.seed, p.size, 1),
      occlude(raindrops, { seed: p.seed, spec }),
      frameBatches(spec, s.gan.batch),
      trainGan({ createTrainer: ganTrainer(s.gan, raindrops, spec.shape, run.log), checkpoints: saved, log: run.log }),
      evaluateModel({ every: s.evalEvery, spec, heldOut, sample: { count: s.evalClips }, baselines: [...BASELINES, ['temporal-median', temporalMedian]], log: run.log }),
      previews(join(run.runDir, 'previews'), spec.shape),
      runReport({ runDir: run.runDir, title: 'st-inpaint custom-stage-example: the demo with a mirror stage', settings: p, notes: departures(s), log: run.log }),
      unwrap(),
    );
  },
});
export default graph;

// `npx tsx graphs/custom-stage-example.ts [options]` runs it directly.
runIfMain(import.meta.url, 'custom-stage-example');

/**
 * demo: the embedded synthetic set under raindrops, trained with the unsupervised inpainting GAN at
 * a CPU-sized preset. The clean clips exist only because the set is synthetic; training sees the
 * observed clips and their masks, nothing else.
 *
 * synthetic train split (epochs, seeded shuffle) → occlude raindrops → Arrow frame batches → train
 */
import { join } from 'node:path';
import { map as rxMap } from 'rxjs';
import { describeSelection, selectBackend, BACKENDS } from '../pipeline/backend.ts';
import { latestCheckpoint, readCheckpointState } from '../pipeline/checkpoint.ts';
import { FrameBatchPool, encodeFrameBatch, type Clip } from '../pipeline/frame-batch.ts';
import { defineGraph } from '../pipeline/graph.ts';
import { batch } from '../pipeline/operators/batch.ts';
import { source } from '../pipeline/operators/source.ts';
import { unwrap } from '../pipeline/operators/unwrap.ts';
import { checkSyntheticOptions, syntheticClip, syntheticSpec, syntheticSplit } from '../datasets/synthetic.ts';
import { epochOrder } from '../stages/batch/epochs.ts';
import { trainGan } from '../stages/gan/train.ts';
import { parameterCounts } from '../stages/gan/networks.ts';
import { GanTrainer, type TrainerState } from '../stages/gan/trainer.ts';
import { chooseOcclusion } from '../stages/occlusion/index.ts';
import { occlude } from '../stages/occlusion/occlude.ts';
import { MaskSampler, fillValue } from '../stages/occlusion/process.ts';
import { Random } from '../stages/random.ts';

export default defineGraph({
  name: 'demo',
  description: 'Synthetic clips under raindrops, inpainting GAN trained from scratch at a CPU preset',
  params: {
    steps: { type: 'number', default: 60, integer: true, min: 1, describe: 'training iterations (one G step and two D steps each)' },
    batch: { type: 'number', default: 4, integer: true, min: 1, describe: 'clips per iteration' },
    clips: { type: 'number', default: 256, integer: true, min: 8, describe: 'synthetic clips in all splits' },
    frames: { type: 'number', default: 8, integer: true, min: 2, describe: 'frames per clip' },
    size: { type: 'number', default: 32, integer: true, min: 8, describe: 'frame height and width (even)' },
    base: { type: 'number', default: 4, integer: true, min: 1, describe: 'base width C of the networks (paper: 32)' },
    'learning-rate': { type: 'number', default: 1e-4, min: 0, describe: 'Adam learning rate (decays ×0.99 every 50 steps)' },
    backend: { type: 'string', default: 'auto', choices: BACKENDS, describe: 'compute backend' },
    seed: { type: 'number', default: 1, integer: true, min: 0, describe: 'seed of data, masks and weights' },
    'checkpoint-every': { type: 'number', default: 20, integer: true, min: 0, describe: 'checkpoint every N steps (and at the end; 0: only at the end)' },
  },
  describe(p) {
    return {
      stages: ['synthetic-train', 'occlude-raindrops', 'batch-clips', 'train-gan'],
      parameters: parameterCounts({ base: p.base, channels: 1, frames: p.frames, height: p.size, width: p.size, extraBlock: false }),
    };
  },
  build(p, { runDir, log, resume }) {
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

    const createTrainer = async (): Promise<GanTrainer> => {
      log(describeSelection(await selectBackend(p.backend)));
      const drawer = await occlusion.process.prepare(occlusion.options as never, shape);
      return new GanTrainer({
        config: { base: p.base, channels: shape.channels, frames: shape.frames, height: shape.height, width: shape.width, extraBlock: false },
        seed: p.seed,
        fill: fillValue(occlusion.process, [-1, 1]),
        timeDependent: occlusion.process.timeDependent,
        sampler: new MaskSampler(drawer, shape, Random.fromKey(p.seed, 'fresh-masks')),
        learningRate: p['learning-rate'],
      });
    };

    return source('synthetic-train', function* () {
      for (const index of epochOrder(train, { seed: p.seed, start, count: Math.max(0, total - start) })) yield syntheticClip(data, index);
    }).pipe(
      occlude(occlusion, { seed: p.seed, spec }),
      batch('batch-clips', p.batch, (clips: Clip[]) => encodeFrameBatch(spec, clips, pool), { recycle: (b) => pool.recycle(b) }),
      trainGan({ createTrainer, checkpoints, checkpointEvery: p['checkpoint-every'], resume, log }),
      unwrap(),
      rxMap((record) => ({ type: 'step', ...record })),
    );
  },
});

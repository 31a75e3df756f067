/** The paper's SST / clouds experiment (method.md §5, §8): the chain of graphs/kth-raindrops.ts on SST under clouds. */
import { paperExperiment } from './kth-raindrops.ts';
import type { PaperModel } from '../stages/gan/setup.ts';
import { runIfMain } from './lib/main.ts';

/** SST under clouds with one of the paper's models (the ablation graphs sst-clouds-static and sst-clouds-recurrent call this). */
export function sstClouds(name: string, model?: PaperModel, description?: string) {
  return paperExperiment({
    name,
    dataset: 'sst',
    occlusion: 'clouds',
    frames: 24,
    ...(model && { model }),
    ...(description && { description }),
    params: {
      lwp: { type: 'string', default: '', describe: 'the liquid-water-path .npy of figshare 10.6084/m9.figshare.9929798 (empty: procedural clouds)' },
      threshold: { type: 'number', default: 70, min: 0, max: 10_000, describe: 'LWP above which a cell is cloudy, g/m² (paper: 55-80, 70 for training)' },
    },
    occlusionOptions: (p) => ({ lwp: p['lwp'], threshold: p['threshold'] }),
  });
}

export default sstClouds('sst-clouds');

runIfMain(import.meta.url, 'sst-clouds');

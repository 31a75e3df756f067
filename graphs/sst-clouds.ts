/** The paper's SST / clouds experiment (method.md §5, §8); the composition is graphs/lib/experiment.ts. */
import { experiment } from './lib/experiment.ts';

export default experiment(import.meta.url, {
  name: 'sst-clouds',
  dataset: 'sst',
  occlusion: 'clouds',
  frames: 24,
  params: {
    lwp: { type: 'string', default: '', describe: 'the liquid-water-path .npy of figshare 10.6084/m9.figshare.9929798 (empty: procedural clouds)' },
    threshold: { type: 'number', default: 70, min: 0, max: 10_000, describe: 'LWP above which a cell is cloudy, g/m² (paper: 55-80, 70 for training)' },
  },
  occlusionOptions: (p) => ({ lwp: p['lwp'], threshold: p['threshold'] }),
});

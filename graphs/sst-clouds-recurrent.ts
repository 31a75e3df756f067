/** The paper's recurrent SST ablation (method.md §8): a ConvGRU generator that sees past frames only. */
import { sstClouds } from './sst-clouds.ts';
import { runIfMain } from './lib/main.ts';

export default sstClouds('sst-clouds-recurrent', 'recurrent', "SST under clouds, the paper's recurrent ablation: a ConvGRU generator that sees past frames only (64×64, 24 frames, C = 32; --preset cpu for a CPU)");

runIfMain(import.meta.url, 'sst-clouds-recurrent');

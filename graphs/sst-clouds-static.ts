/** The paper's static SST ablation (method.md §8): a 2D generator that fills each frame on its own, and no D_s. */
import { sstClouds } from './sst-clouds.ts';
import { runIfMain } from './lib/main.ts';

export default sstClouds('sst-clouds-static', 'static', "SST under clouds, the paper's static ablation: a 2D generator, no sequence discriminator (64×64, 24 frames, C = 32; --preset cpu for a CPU)");

runIfMain(import.meta.url, 'sst-clouds-static');

/**
 * The paper's paired supervised upper bound on FaceForensics++ / raindrops (method.md §8): G is
 * trained with an L1 term to each observation's clean clip plus the adversarial term, and the
 * discriminators compare clean clips with G's completions.
 */
import { paperExperiment } from './kth-raindrops.ts';
import { runIfMain } from './lib/main.ts';

export default paperExperiment({
  name: 'faceforensics-raindrops-paired',
  dataset: 'faceforensics',
  occlusion: 'raindrops',
  frames: 35,
  model: 'paired',
  description: "FaceForensics++ face crops under raindrops, the paper's paired supervised upper bound: L1 to the clean clip + adversarial (64×64, 35 frames, C = 32; --preset cpu for a CPU)",
  params: {
    'l1-weight': { type: 'number', default: 100, min: 0, describe: "weight of the L1 term to the clean clip (pix2pix's 100; the paper does not state it)" },
  },
});

runIfMain(import.meta.url, 'faceforensics-raindrops-paired');

/**
 * The paper's unpaired supervised upper bound on FaceForensics++ / raindrops (method.md §8): the
 * discriminators see clean clips (of a second shuffle of the train split, not the observations'
 * own) against G's completions; G sees observations only.
 */
import { paperExperiment } from './kth-raindrops.ts';
import { runIfMain } from './lib/main.ts';

export default paperExperiment({
  name: 'faceforensics-raindrops-unpaired',
  dataset: 'faceforensics',
  occlusion: 'raindrops',
  frames: 35,
  model: 'unpaired',
  description: "FaceForensics++ face crops under raindrops, the paper's unpaired supervised upper bound: the discriminators see clean clips (64×64, 35 frames, C = 32; --preset cpu for a CPU)",
});

runIfMain(import.meta.url, 'faceforensics-raindrops-unpaired');

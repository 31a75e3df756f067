/** The paper's faceforensics / moving-bar experiment (method.md §8): the chain of graphs/kth-raindrops.ts on faceforensics under moving-bar. */
import { paperExperiment } from './kth-raindrops.ts';
import { runIfMain } from './lib/main.ts';

export default paperExperiment({ name: 'faceforensics-moving-bar', dataset: 'faceforensics', occlusion: 'moving-bar', frames: 35 });

runIfMain(import.meta.url, 'faceforensics-moving-bar');

/** The paper's faceforensics / moving-vertical-bar experiment (method.md §8): the chain of graphs/kth-raindrops.ts on faceforensics under moving-vertical-bar. */
import { paperExperiment } from './kth-raindrops.ts';
import { runIfMain } from './lib/main.ts';

export default paperExperiment({ name: 'faceforensics-moving-bar', dataset: 'faceforensics', occlusion: 'moving-vertical-bar', frames: 35 });

runIfMain(import.meta.url, 'faceforensics-moving-bar');

/** The paper's faceforensics / remove-pixel experiment (method.md §8): the chain of graphs/kth-raindrops.ts on faceforensics under remove-pixel. */
import { paperExperiment } from './kth-raindrops.ts';
import { runIfMain } from './lib/main.ts';

export default paperExperiment({ name: 'faceforensics-remove-pixel', dataset: 'faceforensics', occlusion: 'remove-pixel', frames: 35 });

runIfMain(import.meta.url, 'faceforensics-remove-pixel');

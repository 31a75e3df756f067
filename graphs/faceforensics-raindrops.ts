/** The paper's faceforensics / raindrops experiment (method.md §8): the chain of graphs/kth-raindrops.ts on faceforensics under raindrops. */
import { paperExperiment } from './kth-raindrops.ts';
import { runIfMain } from './lib/main.ts';

export default paperExperiment({ name: 'faceforensics-raindrops', dataset: 'faceforensics', occlusion: 'raindrops', frames: 35 });

runIfMain(import.meta.url, 'faceforensics-raindrops');

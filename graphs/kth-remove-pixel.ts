/** The paper's kth / remove-pixel experiment (method.md §8): the chain of graphs/kth-raindrops.ts on kth under remove-pixel. */
import { paperExperiment } from './kth-raindrops.ts';
import { runIfMain } from './lib/main.ts';

export default paperExperiment({ name: 'kth-remove-pixel', dataset: 'kth', occlusion: 'remove-pixel', frames: 35 });

runIfMain(import.meta.url, 'kth-remove-pixel');

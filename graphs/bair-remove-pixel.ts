/** The paper's bair / remove-pixel experiment (method.md §8): the chain of graphs/kth-raindrops.ts on bair under remove-pixel. */
import { paperExperiment } from './kth-raindrops.ts';
import { runIfMain } from './lib/main.ts';

export default paperExperiment({ name: 'bair-remove-pixel', dataset: 'bair', occlusion: 'remove-pixel', frames: 35 });

runIfMain(import.meta.url, 'bair-remove-pixel');

/** The paper's bair / raindrops experiment (method.md §8): the chain of graphs/kth-raindrops.ts on bair under raindrops. */
import { paperExperiment } from './kth-raindrops.ts';
import { runIfMain } from './lib/main.ts';

export default paperExperiment({ name: 'bair-raindrops', dataset: 'bair', occlusion: 'raindrops', frames: 35 });

runIfMain(import.meta.url, 'bair-raindrops');

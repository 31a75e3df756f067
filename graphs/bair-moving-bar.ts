/** The paper's bair / moving-bar experiment (method.md §8): the chain of graphs/kth-raindrops.ts on bair under moving-bar. */
import { paperExperiment } from './kth-raindrops.ts';
import { runIfMain } from './lib/main.ts';

export default paperExperiment({ name: 'bair-moving-bar', dataset: 'bair', occlusion: 'moving-bar', frames: 35 });

runIfMain(import.meta.url, 'bair-moving-bar');

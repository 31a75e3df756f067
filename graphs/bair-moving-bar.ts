/** The paper's bair / moving-vertical-bar experiment (method.md §8): the chain of graphs/kth-raindrops.ts on bair under moving-vertical-bar. */
import { paperExperiment } from './kth-raindrops.ts';
import { runIfMain } from './lib/main.ts';

export default paperExperiment({ name: 'bair-moving-bar', dataset: 'bair', occlusion: 'moving-vertical-bar', frames: 35 });

runIfMain(import.meta.url, 'bair-moving-bar');

/** The paper's kth / moving-vertical-bar experiment (method.md §8): the chain of graphs/kth-raindrops.ts on kth under moving-vertical-bar. */
import { paperExperiment } from './kth-raindrops.ts';
import { runIfMain } from './lib/main.ts';

export default paperExperiment({ name: 'kth-moving-bar', dataset: 'kth', occlusion: 'moving-vertical-bar', frames: 35 });

runIfMain(import.meta.url, 'kth-moving-bar');

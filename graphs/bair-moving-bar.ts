/** The paper's bair / moving-vertical-bar experiment (method.md §8); the composition is graphs/lib/experiment.ts. */
import { experiment } from './lib/experiment.ts';

export default experiment(import.meta.url, { name: 'bair-moving-bar', dataset: 'bair', occlusion: 'moving-vertical-bar', frames: 35 });

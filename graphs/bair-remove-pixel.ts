/** The paper's bair / remove-pixel experiment (method.md §8); the composition is graphs/lib/experiment.ts. */
import { experiment } from './lib/experiment.ts';

export default experiment(import.meta.url, { name: 'bair-remove-pixel', dataset: 'bair', occlusion: 'remove-pixel', frames: 35 });

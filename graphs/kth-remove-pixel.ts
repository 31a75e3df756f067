/** The paper's kth / remove-pixel experiment (method.md §8); the composition is graphs/lib/experiment.ts. */
import { experiment } from './lib/experiment.ts';

export default experiment(import.meta.url, { name: 'kth-remove-pixel', dataset: 'kth', occlusion: 'remove-pixel', frames: 35 });

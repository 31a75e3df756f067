/** The paper's kth / raindrops experiment (method.md §8); the composition is graphs/lib/experiment.ts. */
import { experiment } from './lib/experiment.ts';

export default experiment(import.meta.url, { name: 'kth-raindrops', dataset: 'kth', occlusion: 'raindrops', frames: 35 });

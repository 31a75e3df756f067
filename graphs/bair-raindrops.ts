/** The paper's bair / raindrops experiment (method.md §8); the composition is graphs/lib/experiment.ts. */
import { experiment } from './lib/experiment.ts';

export default experiment(import.meta.url, { name: 'bair-raindrops', dataset: 'bair', occlusion: 'raindrops', frames: 35 });

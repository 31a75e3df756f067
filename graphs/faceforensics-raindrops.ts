/** The paper's faceforensics / raindrops experiment (method.md §8); the composition is graphs/lib/experiment.ts. */
import { experiment } from './lib/experiment.ts';

export default experiment(import.meta.url, { name: 'faceforensics-raindrops', dataset: 'faceforensics', occlusion: 'raindrops', frames: 35 });

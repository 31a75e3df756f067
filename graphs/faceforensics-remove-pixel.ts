/** The paper's faceforensics / remove-pixel experiment (method.md §8); the composition is graphs/lib/experiment.ts. */
import { experiment } from './lib/experiment.ts';

export default experiment(import.meta.url, { name: 'faceforensics-remove-pixel', dataset: 'faceforensics', occlusion: 'remove-pixel', frames: 35 });

/** The paper's faceforensics / moving-vertical-bar experiment (method.md §8); the composition is graphs/lib/experiment.ts. */
import { experiment } from './lib/experiment.ts';

export default experiment(import.meta.url, { name: 'faceforensics-moving-bar', dataset: 'faceforensics', occlusion: 'moving-vertical-bar', frames: 35 });

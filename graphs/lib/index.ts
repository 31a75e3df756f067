/**
 * What the named graphs share, for users' graphs (`st-inpaint/graphs`): the training parameters
 * and their mapping to the stages' settings, the paper's experiments' presets and dataset opening,
 * the chain of the paper's experiments, and the demo's data.
 */
export { TRAINING_PARAMS, clipsToTrain, departures, trainingSettings, type TrainingParams, type TrainingSettings } from './training.ts';
export { EXPERIMENT_PARAMS, PRESETS, experimentDescription, experimentParameters, openDataset, resolvePreset, type ExperimentDefinition, type ExperimentParams } from './experiment.ts';
export { paperExperiment } from '../kth-raindrops.ts';
export { DEMO_PARAMS, demoData } from '../demo.ts';

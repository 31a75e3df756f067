/**
 * What the named graphs share, for users' graphs (`st-inpaint/graphs`): the training chain from
 * clean clips to the report, the demo's chain with its extension points, and the paper's
 * experiments as a definition.
 */
export { TRAINING_PARAMS, trainAndReport, observeHeldOut, type TrainingPlan, type TrainingSettings } from './training.ts';
export { DEMO_PARAMS, buildDemo, type DemoExtensions } from '../demo.ts';
export { EXPERIMENT_PARAMS, PRESETS, defineExperiment, experiment, resolvePreset, type ExperimentDefinition, type ExperimentParams } from './experiment.ts';

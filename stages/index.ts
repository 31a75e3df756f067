/**
 * The reusable stages and the model, as users' graphs import them (`st-inpaint/stages`). The
 * framework core is `st-inpaint`; datasets are `st-inpaint/datasets`; the paper's chain, the
 * training parameters and the demo's data are `st-inpaint/graphs`.
 */
export { Random, type RandomState } from './random.ts';
export { httpChunks, fetchToCache, defaultCache, HttpStatusError, type FetchOptions, type CacheOptions } from './io/fetch.ts';
export { tarChunks, type TarChunk } from './io/tar.ts';
export { zipEntries, readZipDirectory, type ZipEntry, type ZipDirectoryEntry } from './io/zip.ts';
export { ffmpegPath, probeVideo, FrameReader, VideoWriter, decodeVideoBytes, type VideoInfo } from './io/video.ts';
export { TFRecordParser, TFRecordError, decodeExample, encodeExample, encodeRecord, type Feature } from './decode/tfrecord.ts';
export { fitClips, fitFrames, fitClipPixels, resizeFrame } from './frames/fit.ts';
export { shuffled, shuffledEpochs, type ShuffledEpochsOptions } from './batch/shuffle.ts';
export { frameBatches } from './batch/frame-batches.ts';
export { reservoirSample } from './batch/sample.ts';
export { epochOrder, permutation } from './batch/epochs.ts';
export { occlude, type OccludeOptions, type ObservedClip } from './occlusion/occlude.ts';
export { OCCLUSIONS, chooseOcclusion, findOcclusion, type OcclusionChoice } from './occlusion/index.ts';
export { trainGan, type Trainer, type TrainGanOptions, type TrainRecord, type TrainedModel } from './gan/train.ts';
export { checkpoints, type CheckpointPlan } from './gan/checkpoints.ts';
export { ganTrainer, type GanSettings } from './gan/setup.ts';
export { GanTrainer, NonFiniteLossError, type StepRecord, type TrainerOptions, type TrainerState } from './gan/trainer.ts';
export { Generator, FrameDiscriminator, SequenceDiscriminator, PAPER_CONFIG, parameterCounts, type GanConfig } from './gan/networks.ts';
export { BASELINES, dineof, meanFill, temporalInterpolation, type Baseline } from './eval/baselines.ts';
export { clipMetrics, maskedMae, mse, psnr, ssim, MetricTable, type MetricRow } from './eval/metrics.ts';
export { HeldOutScorer, inpaintClips, toUnit, type HeldOutClip } from './eval/evaluate.ts';
export { heldOutClip, heldOutClips, heldOutStream, type HeldOutOptions } from './eval/held-out.ts';
export { evaluateModel, type EvaluateModelOptions, type EvaluatedStep, type ModelEvaluation } from './eval/evaluate-model.ts';
export { stripPng, writeStrip, maskRow, type StripRow } from './sinks/png-strip.ts';
export { writeReport, reportHtml, type ReportInput } from './sinks/report.ts';
export { previews, type PicturedStep, type Picture } from './sinks/previews.ts';
export { runReport, type RunReportOptions, type RunRecord } from './sinks/run-report.ts';
export { writeShards, readShards, readManifest } from './sinks/shards.ts';
export { inpaintVideo, type ApplyOptions, type ApplySummary } from './apply/inpaint-video.ts';

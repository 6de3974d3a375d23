// Public API of @graft/vision: TensorFlow.js training and prediction of image classifiers. The training config
// schema lives in @graft/contract, which does not load TensorFlow.js.
export { initBackend, type BackendName, type LogFn } from './backend';
export {
  registerBackbone,
  getBackboneSpec,
  trainingInputSize,
  setTopologyInputSize,
  backboneNames,
  loadBackbone,
  listBackbones,
  describeBackbone,
  backboneLocation,
  backboneReader,
  type BackboneSource,
  type BackboneFiles,
  type BackboneSpec,
  type BackboneListing,
  type BackboneDescription,
  type LoadBackboneOptions,
} from './backbones';
export {
  decodeImage,
  decodeImages,
  normalizePixels,
  preprocessImage,
  mapConcurrent,
  PREPROCESSING,
  type Preprocessing,
} from './preprocess';
export {
  sampleTransform,
  applyTransform,
  augmentImage,
  transformMatrix,
  IDENTITY_TRANSFORM,
  type AffineTransform,
  type AugmentationOptions,
  type FillMode,
  type Interpolation,
} from './augment';
export { createRng, deriveSeed, type Rng } from './random';
export { createFrozenModel, type FrozenModel, type FrozenModelOptions, type FrozenEngine } from './frozen';
export { carveSplits, spread, type ImageRef, type Splits, type SplitConfig } from './split';
export { train, type TrainOptions, type TrainResult } from './train';
export { FINE_TUNING_STEP_COST } from './train/resources';
export { LOWER_MAP_BYTES } from './train/extract';
export { INFERENCE_BATCH } from './train/types';
export type { ImagePrediction } from './train/types';
export type { LabelIssue, LabelIssues } from './train/label-issues';
export { rankLabelIssues, classThresholds, type RankedLabelIssue } from './label-issues';
export { crossValidate, CROSS_VALIDATION, type CrossValidated, type CrossValidationInput, type CrossValidationSettings } from './cross-validate';
export type { HistoryRow } from './fit';
export type { TrainEvent, Phase } from './progress';
export {
  Checkpoints,
  CHECKPOINT_FILES,
  type CheckpointLog,
  type CheckpointStore,
  type Checkpoint,
  type CheckpointMeta,
} from './checkpoint';
export { classificationMetrics, type TestMetrics, type ClassMetrics } from './evaluate';
export { exportClassifier, makeManifest, MANIFEST_FILE, VISION_VERSION, type GraftManifest } from './export';
export { loadClassifier, type Classifier, type Prediction } from './classifier';
export { loadExplainer, type Explainer, type Explanation } from './explain';
export { saveLayersModelToFiles, loadLayersModelFromFiles } from './model-files';
export { VisionError, AbortError, ImageDecodeError, isPermanent, type EngineError } from './errors';

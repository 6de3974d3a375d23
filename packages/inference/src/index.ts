export {
  convertToOnnx,
  exportOnnx,
  UnsupportedLayerError,
  type OnnxExport,
  type OnnxExportOptions,
  type OnnxTensorInfo,
  type TfjsModelJson,
} from './onnx-export';
export { createSession, isOnnxRuntimeAvailable, type ExecutionProvider, type OrtModel, type SessionOptions } from './session';
export { decodeModel } from './onnx-proto';
export { pixelGrid, quantizeOnnx, type Calibrated, type CalibrationBatch, type CalibrationMethod, type QuantizeOptions, type QuantizeReport } from './quantize';
export {
  quantizeClassifier,
  INT8_MAX_ACCURACY_DROP,
  INT8_MIN_AGREEMENT,
  INT8_STRIDES,
  type Int8CheckSeconds,
  type Int8Attempt,
  type Int8Decision,
  type Int8GateData,
  type Int8GateOptions,
} from './int8-gate';
export type { WeightBytes, WeightSpec, WeightsManifestGroup } from './tfjs-weights';
export { DynamicBatcher, BatcherClosedError, type BatchInfo, type Batched, type BatchRunner, type BatcherOptions } from './batcher';
export { ModelCache, type Loaded, type ModelCacheOptions } from './model-cache';
export {
  decodeImage,
  decodeWithSharp,
  decodeAll,
  resizeKernelOf,
  RESIZE_KERNELS,
  TRAINING_RESIZE_KERNEL,
  normalizeInto,
  normalizedBatches,
  pixelTransform,
  InvalidImageError,
  type NormalizedBatch,
  type PixelPreprocessing,
  type PixelTransform,
  type ResizeKernel,
} from './image';
export { SessionHost, type SessionHostOptions } from './session-host';
export { LocalSessionHost } from './local-host';
export { LentBuffers, type HostedSession, type RunOptions, type SessionHostLike } from './host';
export { Cosine, cosineSimilarity } from './similarity';
export {
  loadOnnxClassifier,
  tfjsClassifier,
  topK,
  checkManifest,
  manifestTemperature,
  mirrored,
  type ClassifierManifest,
  type ClassifyOptions,
  type ClassifyResult,
  type ClassifyTiming,
  type EngineName,
  type ImageClassifier,
  type OnnxClassifierOptions,
  type Prediction,
  type TfjsClassifierLike,
} from './classifier';
export {
  Predictor,
  INT8_FILE,
  type ModelSource,
  type PredictEngine,
  type PredictorOptions,
  type PredictOptions,
  type PredictResult,
  type PredictTiming,
  type LogFn,
} from './predictor';
export {
  applyTemperature,
  fitTemperature,
  reliabilityBins,
  expectedCalibrationError,
  calibrationReport,
  CALIBRATION_BINS,
  type CalibrationReport,
  type ReliabilityBin,
} from './calibration';
export {
  checkOodManifest,
  normalizeRows,
  oodScore,
  readBank,
  thresholdFor,
  withOodOutput,
  scoreFromDots,
  OOD_BANK_FILE,
  OOD_NEIGHBOURS,
  OOD_VALIDATION_SHARE,
  type OodManifest,
  type OodResult,
} from './ood';

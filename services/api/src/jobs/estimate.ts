// What a training job will cost, estimated from its config and its dataset before it is accepted: peak memory of
// the training process and wall-clock time. Deliberately simple and on the generous side for time (a fast machine)
// so that only configs that cannot fit are refused; memory follows what the trainer keeps (packages/vision/train):
// every image decoded once at the input size, cached features of each training image and its augmented copies
// (pooled for the head, and the lower part's full maps, LOWER_MAP_BYTES a value, when fine-tuning), the trained
// weights with their gradients and optimizer slots, one batch's activations, and ONNX Runtime's arenas in the frozen
// base's sessions.
import type { TrainingConfig } from '@graft/contract';
import { FINE_TUNING_STEP_COST, INFERENCE_BATCH, LOWER_MAP_BYTES } from '@graft/vision';

export interface DatasetCounts {
  train: number;
  validation: number;
  test: number;
  classes: number;
}

/** The frozen base at the job's input size; null for the convnet trained from scratch. */
export interface BaseShape {
  inputSize: number;
  /** [height, width, channels] of the features. */
  featureShape: [number, number, number];
  params: number;
}

export interface JobEstimate {
  memoryBytes: number;
  seconds: number;
  /** The larger parts of memoryBytes, for the error message. */
  memory: Record<string, number>;
}

const F32 = 4;
/** Weights, gradients and two optimizer slots, float32. */
const BYTES_PER_TRAINED_PARAM = 16;
/** Activations of one image in a batch, forward and backward, per input pixel (MobileNet at 224: about 10 MB). */
const ACTIVATION_BYTES_PER_PIXEL = 200;
/**
 * ONNX Runtime's arenas in the sessions that run the frozen base's batches of INFERENCE_BATCH images (its parts in
 * fp32 and int8, and the int8 check's), per input pixel of each image. Measured (2026-12-06): the training process of
 * the default job on 244 images peaked at 1.21, 1.86 and 2.75 GiB at 160, 224 and 288 px, about 0.52 GiB plus 27 KB
 * a pixel beyond its images and features; the activations above account for 6.4 KB of those.
 */
const SESSION_BYTES_PER_PIXEL = 650;
/** TF.js, ONNX Runtime and the process itself (the same measurement's intercept). */
const RUNTIME_BYTES = 512 * 1024 ** 2;
/** One image through a MobileNet-sized base at 224, on a fast machine. */
const SECONDS_PER_BASE_PASS_224 = 0.004;
/** One image through the scratch convnet (forward and backward) at 96, on a fast machine. */
const SECONDS_PER_SCRATCH_PASS_96 = 0.004;
/** Multiply-adds a second for the dense head, on a fast machine. */
const HEAD_FLOPS = 100e9;

export function estimateJob(cfg: TrainingConfig, data: DatasetCounts, base: BaseShape | null, size: number): JobEstimate {
  const all = data.train + data.validation + data.test;
  const pixels = size * size;
  const outputs = data.classes === 2 ? 1 : data.classes;
  const memory: Record<string, number> = {
    images: all * pixels * 3,
    batch: cfg.batchSize * pixels * ACTIVATION_BYTES_PER_PIXEL,
    runtime: RUNTIME_BYTES,
  };
  let seconds: number;
  const headEpochs = cfg.featureExtraction.epochs;

  if (!base) {
    const side = Math.max(1, Math.floor(size / 16) - 1);
    const params = side * side * 128 * 512 + 512 * outputs + 300_000;
    memory.weights = params * BYTES_PER_TRAINED_PARAM;
    seconds = headEpochs * (data.train + data.validation) * SECONDS_PER_SCRATCH_PASS_96 * (pixels / (96 * 96));
  } else {
    const [h, w, c] = base.featureShape;
    memory.sessions = INFERENCE_BATCH * pixels * SESSION_BYTES_PER_PIXEL;
    const cached = cfg.augmentation === false || cfg.augmentation.mode === 'cached';
    const copies = cfg.augmentation !== false && cached ? cfg.augmentation.copies : 0;
    const fineTuning = cfg.method === 'fine_tuning';
    const pooled = cfg.head.pooling === 'flatten' ? h * w * c : c;
    const headParams = cfg.head.units > 0 ? pooled * cfg.head.units + cfg.head.units * outputs : pooled * outputs;
    // A refit keeps the validation images' augmented copies too, and trains the chosen epochs again on every image.
    // (A dataset without a validation split has one carved out of train: its images are counted as training images.)
    const refit = cfg.refit && cached && (data.validation > 0 || cfg.split.validation > 0);
    const cachedSamples = cached ? data.train * (1 + copies) + data.validation * (1 + (refit ? copies : 0)) : 0;
    memory.features = cachedSamples * pooled * F32 + (fineTuning && cached ? cachedSamples * h * w * c * LOWER_MAP_BYTES : 0);
    memory.weights = (headParams + (fineTuning ? base.params * 0.3 : 0)) * BYTES_PER_TRAINED_PARAM + base.params * F32 * 2;

    const pass = SECONDS_PER_BASE_PASS_224 * (pixels / (224 * 224));
    const basePasses = cached
      ? cachedSamples + data.test
      : headEpochs * (data.train + data.validation) + data.test;
    // At most the configured epochs again, on training and validation images.
    const refitShare = refit ? 1 + (data.train + data.validation) / Math.max(1, data.train) : 1;
    const ftPasses = fineTuning ? refitShare * cfg.fineTuning.epochs * data.train * (cached ? FINE_TUNING_STEP_COST.onnxruntime : 2.5) : 0;
    const headSamples = refitShare * headEpochs * (cached ? cachedSamples : data.train + data.validation);
    seconds = (basePasses + ftPasses) * pass + (headSamples * headParams * 6) / HEAD_FLOPS;
  }
  const memoryBytes = Object.values(memory).reduce((a, b) => a + b, 0);
  return { memoryBytes, seconds, memory };
}

const GiB = 1024 ** 3;
export const formatBytes = (n: number) => (n >= GiB ? `${(n / GiB).toFixed(1)} GiB` : `${Math.ceil(n / 1024 ** 2)} MiB`);

// What train() takes and gives back, and the context every phase of a run reads.
import type { FrozenEngineSetting, FrozenPrecision } from '@graft/config/engines';
import type { BackboneSource } from '../backbones';
import type { LogFn } from '../backend';
import type { Checkpoint } from '../checkpoint';
import type { TrainingConfig } from '@graft/contract';
import type { TestMetrics } from '../evaluate';
import type { GraftManifest } from '../export';
import type { BatchSource, Forward, HistoryRow, LossKind } from '../fit';
import type { TrainEvent } from '../progress';
import type { ImageRef } from '../split';
import type { LabelIssues } from './label-issues';
import type { Refit } from './refit';

export interface TrainOptions {
  /** From resolveConfig(); inputSize null means the backbone's training size (150 for scratch). */
  config: TrainingConfig;
  labels: string[];
  /** Validation or test may be empty: they are then carved from train per config.split. */
  splits: { train: ImageRef[]; validation: ImageRef[]; test: ImageRef[] };
  /** Encoded bytes (JPEG, PNG, WebP) of an image. */
  readImage(key: string): Promise<Uint8Array>;
  /** Folder, file:// URL or http(s):// URL base holding `<backbone>/model.json`, or a reader of `<backbone>/<file>`. */
  backbones: BackboneSource;
  /** Aborting stops training before the next batch; train() then rejects with an AbortError. */
  signal?: AbortSignal;
  onEvent?(e: TrainEvent): void;
  /** Written into every history row (default 1). */
  attempt?: number;
  /** Continue from this checkpoint: finished epochs are skipped, earlier history rows kept. */
  resume?: Checkpoint | null;
  /** Called with the likely label errors as soon as they are found (before the head is trained), to store them. */
  onLabelIssues?(issues: Extract<LabelIssues, { available: true }>): Promise<void>;
  /** Called after every epoch with the checkpoint to store. */
  onCheckpoint?(c: Checkpoint): Promise<void>;
  log?: LogFn;
  /** Threads sharing a training step on single-threaded backends, at most the cores (default 1: GRAFT_TRAIN_THREADS). */
  threads?: number;
  /** What runs the frozen part: ONNX Runtime where it can ('auto', the default), or one engine (GRAFT_FROZEN_ENGINE). */
  frozenEngine?: FrozenEngineSetting;
  /** What computes the training steps' gradients on CPU backends, as frozenEngine (GRAFT_TRAIN_ENGINE; step-engine.ts). */
  trainEngine?: FrozenEngineSetting;
  /** The frozen part's number format (GRAFT_FROZEN_PRECISION): fp32 (default), or int8 where it stays close to fp32. */
  frozenPrecision?: FrozenPrecision;
}

export interface TrainResult {
  /** `model.json`, `weights.bin`, `graft.json`. */
  artifacts: Record<string, Uint8Array>;
  history: HistoryRow[];
  test: TestMetrics | null;
  validation: TestMetrics | null;
  /** Each evaluated image of the validation and test splits (null where the split has none). */
  predictions: { validation: ImagePrediction[] | null; test: ImagePrediction[] | null };
  /**
   * The exported model's class of each validation image, in predictions.validation's order (after a refit the refit
   * model's, where predictions.validation holds the chosen model's); null without validation predictions.
   */
  exportedValidationClasses: number[] | null;
  labels: string[];
  graft: GraftManifest;
  /** Likely label errors of the training and validation images, or why the run has none. */
  labelIssues: LabelIssues;
  /**
   * What the refit trained (train/refit.ts), null where the model is the one chosen on the validation images: after
   * a refit, `validation` and `predictions.validation` are that chosen model's, the artifacts the refit model's.
   */
  refit: Refit | null;
  /** Images per split after carving and after dropping undecodable ones. */
  counts: { train: number; validation: number; test: number; skipped: number };
}

/** What every phase reads: the options, the TensorFlow.js backend, the labels and their loss. */
export interface TrainContext {
  opts: TrainOptions;
  cfg: TrainingConfig;
  labels: string[];
  numClasses: number;
  kind: LossKind;
  backend: string;
  attempt: number;
  signal?: AbortSignal;
  log: LogFn;
  emit(e: TrainEvent): void;
}

/** Batch size of forward passes that are not training steps (feature extraction, evaluation). */
export const INFERENCE_BATCH = 32;

/** What the trained part is after a phase: its forward function and its validation data. */
export interface Trained {
  forward: Forward;
  validation: BatchSource | null;
}

/** Decoded images (size x size x 3 RGB) of one split, their labels and their keys. */
export interface ImageSet {
  images: Uint8Array[];
  labels: number[];
  keys: string[];
}

/** How the trained model classifies one evaluated image (calibrated probabilities, as served). */
export interface ImagePrediction {
  key: string;
  label: number;
  predicted: number;
  probabilities: number[];
}

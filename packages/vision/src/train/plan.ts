// Phase "plan": checks the labels, carves validation and test sets where the dataset has none, and settles what
// the run will do (method, backbone, input size, preprocessing, augmentation, what a checkpoint resumes).
// Nothing is loaded or decoded yet.
import type { AugmentationOptions } from '../augment';
import { getBackboneSpec, trainingInputSize, type BackboneSpec } from '../backbones';
import type { Checkpoint } from '../checkpoint';
import type { TrainingConfig } from '@graft/contract';
import { VisionError } from '../errors';
import type { HistoryRow } from '../fit';
import { PREPROCESSING, TRAINING_RESIZE_KERNEL, type Preprocessing } from '../preprocess';
import { carveSplits, type Splits } from '../split';
import type { TrainContext } from './types';

export interface Plan {
  method: TrainingConfig['method'];
  /** Null for scratch. */
  spec: BackboneSpec | null;
  backboneName: string | null;
  size: number;
  preprocessing: Preprocessing;
  augmentation: AugmentationOptions | null;
  /** Features of the training images (and `copies` augmented copies) computed once, not every epoch. */
  cachedMode: boolean;
  copies: number;
  splits: Splits & { carved: { validation: boolean; test: boolean } };
  /** The checkpoint this run continues from, where it belongs to this run. */
  resume: Checkpoint | null;
  /** Rows of the epochs finished (those of the checkpoint first); phases append to it. */
  history: HistoryRow[];
  /** The checkpoint is of fine-tuning: the head phase is done. */
  skipHead: boolean;
  /** Early-stopping patience; null: none. */
  patience: number | null;
  /** Fine-tuning's early-stopping patience, counted from the head's best validation loss; null: none. */
  fineTuningPatience: number | null;
  /**
   * The trained parts are trained again on the training and validation images together once the epochs are chosen
   * (train/refit.ts): transfer learning with cached augmentation, where there are validation images.
   */
  refit: boolean;
}

/**
 * What extraction sends through the frozen part: with cached augmentation every training image and its copies
 * (`train`), and in all (`total`) the validation images too, with their copies where the run refits.
 */
export function extractionItems(p: Plan): { train: number; total: number } {
  const train = p.cachedMode ? p.splits.train.length * (1 + p.copies) : 0;
  return { train, total: train + p.splits.validation.length * (1 + (p.refit ? p.copies : 0)) };
}

export function plan(ctx: TrainContext): Plan {
  const { cfg, numClasses, log } = ctx;
  for (const [name, refs] of Object.entries(ctx.opts.splits)) {
    for (const r of refs) {
      if (!Number.isInteger(r.label) || r.label < 0 || r.label >= numClasses) {
        throw new VisionError('INVALID_LABEL', `image '${r.key}' in ${name} has label ${r.label}, outside 0..${numClasses - 1}`);
      }
    }
  }
  const splits = carveSplits(ctx.opts.splits, cfg.split, numClasses);
  if (splits.train.length === 0) throw new VisionError('EMPTY_TRAINING_SET', 'there are no training images');
  if (new Set(splits.train.map((r) => r.label)).size < 2) {
    throw new VisionError('TOO_FEW_CLASSES', 'the training images must cover at least two classes');
  }

  const method = cfg.method;
  const spec = method === 'scratch' ? null : getBackboneSpec(cfg.backbone);
  const size = trainingInputSize(cfg);
  if (method === 'scratch' && size < 46) {
    throw new VisionError('INVALID_INPUT_SIZE', `the scratch convnet needs an input size of at least 46 (got ${size})`);
  }
  const cachedMode = cfg.augmentation === false || cfg.augmentation.mode === 'cached';
  const backboneName = spec ? spec.name : null;
  const resume = usableCheckpoint(ctx, { method, backbone: backboneName, inputSize: size });
  const p: Plan = {
    method,
    spec,
    backboneName,
    size,
    // New models are resized with the cheaper antialiased linear filter; graft.json records it.
    preprocessing: { ...(spec?.preprocessing ?? PREPROCESSING.unit), resizeKernel: TRAINING_RESIZE_KERNEL },
    augmentation: augmentationOptions(cfg.augmentation),
    cachedMode,
    copies: cfg.augmentation !== false && cachedMode ? cfg.augmentation.copies : 0,
    splits,
    resume,
    history: resume ? resume.meta.history.map((r) => ({ ...r })) : [],
    skipHead: !!resume && resume.meta.phase === 'fine_tuning',
    patience: cfg.earlyStopping === false ? null : cfg.earlyStopping.patience,
    fineTuningPatience: cfg.earlyStopping === false ? null : cfg.earlyStopping.fineTuningPatience,
    refit: cfg.refit && method !== 'scratch' && cachedMode && splits.validation.length > 0,
  };
  log(
    {
      method,
      backbone: backboneName,
      inputSize: size,
      backend: ctx.backend,
      train: splits.train.length,
      validation: splits.validation.length,
      test: splits.test.length,
      carved: splits.carved,
      refit: p.refit,
      resumeFrom: resume ? { phase: resume.meta.phase, epoch: resume.meta.epoch } : null,
    },
    'training started',
  );
  return p;
}

function augmentationOptions(cfg: TrainingConfig['augmentation']): AugmentationOptions | null {
  if (cfg === false) return null;
  return {
    rotationRange: cfg.rotationRange,
    widthShiftRange: cfg.widthShiftRange,
    heightShiftRange: cfg.heightShiftRange,
    shearRange: cfg.shearRange,
    zoomRange: cfg.zoomRange,
    horizontalFlip: cfg.horizontalFlip,
    verticalFlip: cfg.verticalFlip,
    fillMode: cfg.fillMode,
    cval: cfg.cval,
  };
}

/** The checkpoint to resume from where it belongs to this run (same method, backbone, size and labels). */
function usableCheckpoint(ctx: TrainContext, args: { method: string; backbone: string | null; inputSize: number }): Checkpoint | null {
  const c = ctx.opts.resume;
  if (!c) return null;
  const m = c.meta;
  const same =
    m?.format === 'graft-checkpoint' &&
    m.method === args.method &&
    m.backbone === args.backbone &&
    m.inputSize === args.inputSize &&
    JSON.stringify(m.labels) === JSON.stringify(ctx.labels);
  if (!same) {
    ctx.log({ checkpoint: { method: m?.method, backbone: m?.backbone, inputSize: m?.inputSize } }, 'checkpoint does not match this training run; starting over');
    return null;
  }
  return c;
}

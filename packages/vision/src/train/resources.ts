// What a training run holds: its progress (the planned work of each phase) and everything that must be freed
// when the run ends, however it ends: models, the head, frozen-model sessions, replica threads, optimizers.
// Phases register what they create with own(); dispose() frees it all, the last registered first.
import { ProgressTracker, type Phase, type TrainEvent } from '../progress';
import { OOD_BANK_MAX } from './ood';
import { extractionItems, type Plan } from './plan';

/**
 * How a training epoch draws from cached features of images and their augmented copies. The head trains on
 * pooled vectors, which is cheap: every copy every epoch. Fine-tuning runs the top block on feature maps: one
 * copy of each image per epoch, a different one each epoch, as an epoch of on-the-fly augmentation does.
 */
export const HEAD_SAMPLING = 'all' as const;
export const FINE_TUNING_SAMPLING = 'one_per_group' as const;

/** What a training step of the head on one cached pooled vector costs, in whole-backbone passes. */
export const HEAD_STEP_COST = 0.03;

/**
 * The share of the configured epochs a refit is planned to train (early stopping chooses them; the head's best
 * epoch of the default 30 was the 8th to the 22nd on Dogs vs Cats and flowers, fine-tuning's 0 to 3 of 4).
 */
const REFIT_EPOCHS_SHARE = 0.5;

/** What a forward pass of the trained top block on one cached sample costs, in whole-backbone passes. */
export const TOP_BLOCK_PASS_COST = 0.15;

/**
 * Planned work of each phase, in units of "one image through the whole backbone". `fineTuningStepCost`: what a
 * fine-tuning step of the top block on one cached sample costs in those units (see FINE_TUNING_STEP_COST).
 */
export function plannedWork(p: Plan, cfg: { headEpochs: number; fineTuningEpochs: number; fineTuningStepCost: number }): Partial<Record<Phase, number>> {
  const nTrain = p.splits.train.length;
  const nVal = p.splits.validation.length;
  const nTest = p.splits.test.length;
  const nAll = nTrain + nVal + nTest;
  if (p.method === 'scratch') {
    return { preparing: nAll * 0.05, training_head: cfg.headEpochs * (nTrain + nVal) * 0.5, evaluating: nTest * 0.2 + 1, exporting: 1 };
  }
  const headCopies = HEAD_SAMPLING === 'all' ? 1 + p.copies : 1;
  const fineTuning = p.method === 'fine_tuning' ? cfg.fineTuningEpochs * nTrain * (p.cachedMode ? cfg.fineTuningStepCost : 2.5) : 0;
  const refitHead = cfg.headEpochs * (nTrain + nVal) * headCopies * HEAD_STEP_COST;
  return {
    preparing: p.cachedMode ? 1 : nAll * 0.05,
    extracting: extractionItems(p).total,
    training_head: p.skipHead ? 0 : cfg.headEpochs * (p.cachedMode ? (nTrain * headCopies + nVal) * HEAD_STEP_COST : nTrain),
    fine_tuning: fineTuning,
    refitting: p.refit && nTrain ? REFIT_EPOCHS_SHARE * (refitHead + (fineTuning * (nTrain + nVal)) / nTrain) : 0,
    // Evaluation runs the cached features of the validation images and of up to OOD_BANK_MAX training images (the
    // out-of-distribution bank) through the trained top block, a small share of a whole pass each, and the test
    // images through the whole network.
    evaluating: (nVal + Math.min(nTrain, OOD_BANK_MAX)) * TOP_BLOCK_PASS_COST + nTest * (1 + TOP_BLOCK_PASS_COST) + 1,
    exporting: 2,
  };
}

/**
 * A fine-tuning step of the top block on one cached sample (its share of the epoch's validation included), in frozen
 * passes of an image: on ONNX Runtime's step graph about 0.3 (the default Dogs vs Cats job at 288, 2 AVX2 cores: 4
 * epochs of 2,000 samples and 1,000 validation samples in 37 s, extraction at 67 images/s), with TensorFlow.js
 * steps about 1.5.
 */
export const FINE_TUNING_STEP_COST = { onnxruntime: 0.3, tfjs: 1.5 } as const;

export class RunResources {
  readonly progress: ProgressTracker;
  private readonly owned: { name: string; free(): unknown }[] = [];
  private disposed = false;

  constructor(work: Partial<Record<Phase, number>>, emit: (e: TrainEvent) => void) {
    this.progress = new ProgressTracker(work, emit);
  }

  /** Registers `thing` to be freed by `free` when the run ends; returns it. */
  own<T>(thing: T, free: (t: T) => unknown, name = 'resource'): T {
    if (this.disposed) {
      void Promise.resolve(free(thing)).catch(() => {});
      throw new Error(`the training run has ended; ${name} was freed at once`);
    }
    this.owned.push({ name, free: () => free(thing) });
    return thing;
  }

  /** Frees everything registered, the last registered first; a failure to free one does not stop the rest. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const o of this.owned.reverse()) {
      try {
        await o.free();
      } catch {
        // Freeing is best effort: the run's own result or error is what the caller needs.
      }
    }
    this.owned.length = 0;
  }
}

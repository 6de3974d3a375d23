// What a training run holds: its progress (the planned work of each phase) and everything that must be freed
// when the run ends, however it ends: models, the head, frozen-model sessions, replica threads, optimizers.
// Phases register what they create with own(); dispose() frees it all, the last registered first.
import { ProgressTracker, type Phase, type TrainEvent } from '../progress';
import type { Plan } from './plan';

/**
 * How a training epoch draws from cached features of images and their augmented copies. The head trains on
 * pooled vectors, which is cheap: every copy every epoch. Fine-tuning runs the top block on feature maps: one
 * copy of each image per epoch, a different one each epoch, as an epoch of on-the-fly augmentation does.
 */
export const HEAD_SAMPLING = 'all' as const;
export const FINE_TUNING_SAMPLING = 'one_per_group' as const;

/** Planned work of each phase, in units of "one image through the whole backbone". */
export function plannedWork(p: Plan, cfg: { headEpochs: number; fineTuningEpochs: number }): Partial<Record<Phase, number>> {
  const nTrain = p.splits.train.length;
  const nVal = p.splits.validation.length;
  const nTest = p.splits.test.length;
  const nAll = nTrain + nVal + nTest;
  if (p.method === 'scratch') {
    return { preparing: nAll * 0.05, training_head: cfg.headEpochs * (nTrain + nVal) * 0.5, evaluating: nTest * 0.2 + 1, exporting: 1 };
  }
  const headCopies = HEAD_SAMPLING === 'all' ? 1 + p.copies : 1;
  return {
    preparing: p.cachedMode ? 1 : nAll * 0.05,
    extracting: (p.cachedMode ? nTrain * (1 + p.copies) : 0) + nVal,
    training_head: p.skipHead ? 0 : cfg.headEpochs * (p.cachedMode ? (nTrain * headCopies + nVal) * 0.03 : nTrain),
    // A fine-tuning step of the top block on one sample costs about 1.5 frozen passes of an image.
    fine_tuning: p.method === 'fine_tuning' ? cfg.fineTuningEpochs * nTrain * (p.cachedMode ? 1.5 : 2.5) : 0,
    evaluating: nTest + 1,
    exporting: 2,
  };
}

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

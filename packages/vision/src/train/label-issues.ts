// Likely label errors, found from the cached head features right after extraction: every training image is
// scored by a model that did not see it (k-fold cross-validation, cross-validate.ts), every validation image by
// the folds' models together, and the images whose label disagrees most confidently with those scores are
// ranked (label-issues.ts), with per-class thresholds from the training images. This runs before the head is
// trained, on the features of the pretrained backbone, so no score comes from a network fitted to the labels it
// judges. Runs that keep no cached head features (scratch, end-to-end augmentation, a run resumed in
// fine-tuning) have none.
import { crossValidate } from '../cross-validate';
import { classThresholds, rankLabelIssues } from '../label-issues';
import type { Extracted } from './extract';
import type { Plan } from './plan';
import type { TrainContext } from './types';

export interface LabelIssue {
  /** The image's key, as in the splits given to train(). */
  key: string;
  split: 'train' | 'validation';
  label: number;
  suggested: number;
  /** In [0, 1]; higher is more suspicious. */
  score: number;
}

export type LabelIssues =
  | {
      available: true;
      /** Most suspicious first. */
      items: LabelIssue[];
      scored: { train: number; validation: number };
      folds: number;
      seconds: number;
    }
  | { available: false; reason: string; resumed: boolean };

/** Why the run has no label issues to find, or null where it can find them. */
export function labelIssuesUnavailable(ctx: TrainContext, p: Plan): Extract<LabelIssues, { available: false }> | null {
  const reason = (text: string, resumed = false) => ({ available: false as const, reason: text, resumed });
  if (!ctx.cfg.labelIssues) return reason('label issues were turned off (config.labelIssues: false)');
  if (p.method === 'scratch') return reason('a model trained from scratch has no pretrained features to score the images with');
  if (!p.cachedMode) return reason('end-to-end augmentation keeps no cached features to score the images with');
  if (p.skipHead) return reason('the run resumed in fine-tuning; the label issues are those of the attempt that extracted the features', true);
  return null;
}

export async function findLabelIssues(ctx: TrainContext, p: Plan, x: Extracted): Promise<LabelIssues> {
  const unavailable = labelIssuesUnavailable(ctx, p);
  if (unavailable) return unavailable;
  const train = x.headTrain;
  if (!train || train.count === 0) return { available: false, reason: 'no training features were cached', resumed: false };
  const started = performance.now();
  const val = x.headVal;
  const cv = await crossValidate({
    vectors: train.samples(),
    labels: train.labels,
    groups: train.sampleGroups,
    numClasses: ctx.numClasses,
    seed: ctx.cfg.seed,
    others: val ? val.samples() : [],
    signal: ctx.signal,
  });
  const thresholds = classThresholds(cv.probabilities, cv.labels, ctx.numClasses);
  const trainIssues = rankLabelIssues(cv.probabilities, cv.labels, ctx.numClasses, thresholds).map((r) => ({
    key: p.splits.train[cv.groups[r.index]!]!.key,
    split: 'train' as const,
    label: r.label,
    suggested: r.suggested,
    score: r.score,
  }));
  const valGroups = val?.sampleGroups ?? [];
  const valLabels = val?.labels ?? [];
  const valIssues = rankLabelIssues(cv.others, valLabels, ctx.numClasses, thresholds).map((r) => ({
    key: x.sets.validation.keys[valGroups[r.index]!]!,
    split: 'validation' as const,
    label: r.label,
    suggested: r.suggested,
    score: r.score,
  }));
  const items = [...trainIssues, ...valIssues].sort((a, b) => b.score - a.score);
  const seconds = (performance.now() - started) / 1000;
  ctx.log({ scored: cv.groups.length + cv.others.length, issues: items.length, folds: cv.folds, seconds: +seconds.toFixed(2) }, 'label issues found');
  return { available: true, items, scored: { train: cv.groups.length, validation: cv.others.length }, folds: cv.folds, seconds };
}

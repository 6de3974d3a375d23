// Training a classifier, end to end, as a sequence of phases (each in its own file under train/):
//
//   plan       check the labels, carve splits, settle method, input size, augmentation, what a checkpoint resumes
//   prepare    decode every image once at the input size
//   extract    run the frozen part once per image (and augmented copy) and cache its outputs
//   label issues  score every training image by k-fold cross-validation over the cached features, rank likely
//              label errors (before the head sees the labels)
//   head       train the new head on the frozen features
//   fine-tune  train the backbone's top block together with the head
//   refit      train the head (and the top block) again from their start on training and validation images
//              together, for the epochs early stopping chose (cached augmentation with validation images)
//   evaluate   validation loss and accuracy, test metrics, the calibration temperature fitted on validation,
//              the out-of-distribution feature bank and threshold
//   export     one TensorFlow.js model and its graft.json
//
// Methods:
// - feature_extraction: frozen base, new head. With augmentation in 'cached' mode, the features of every training
//   image and of `copies` augmented copies of it are computed once; in 'end_to_end' mode new augmented images go
//   through the frozen base every epoch.
// - fine_tuning: feature extraction first, then the top block (from config.fineTuning.fromLayer, by default the
//   backbone's top block) is trained together with the head. The frozen part below it is run once per image copy
//   and cached, which is exact because it does not change; each fine-tuning epoch takes one copy of each image.
// - scratch: the small Keras convnet trained from random weights on [0, 1] pixels, augmented every epoch
//   (train/scratch.ts, in place of extract, head and fine-tune).
//
// Frozen passes run on ONNX Runtime in a worker thread where they can (frozen.ts), TensorFlow.js otherwise;
// meanwhile this thread decodes (sharp) and augments the next images. The trained parts train on TensorFlow.js.
// Every tensor is read asynchronously. The run's progress and everything it allocates belong to one
// RunResources (train/resources.ts), which frees it all however the run ends.
import { initBackend, type LogFn } from './backend';
import { AbortError, throwIfAborted, VisionError } from './errors';
import type { LossKind } from './fit';
import type { TrainEvent } from './progress';
import { evaluate } from './train/evaluate';
import { outOfDistributionStats } from './train/ood';
import { trainedFeatures, trainedPartStores, type TrainedFeatures } from './train/trained-features';
import { exportModel } from './train/export';
import { extract, type Extracted } from './train/extract';
import { fineTune } from './train/fine-tune';
import { trainHead } from './train/head';
import { findLabelIssues, labelIssuesUnavailable, type LabelIssues } from './train/label-issues';
import { plan } from './train/plan';
import { refit, saveWeights, type Refit, type SavedWeights } from './train/refit';
import { prepare, type Sets } from './train/prepare';
import { FINE_TUNING_STEP_COST, plannedWork, RunResources } from './train/resources';
import { stepsOnOnnxRuntime } from './train/epochs';
import { trainScratch } from './train/scratch';
import { setUpTransfer, type Network } from './train/transfer';
import type { TrainContext, Trained, TrainOptions, TrainResult } from './train/types';

export type { HistoryRow } from './fit';
export type { TrainEvent, Phase } from './progress';
export type { ImageRef } from './split';
export type { Checkpoint } from './checkpoint';
export type { TrainOptions, TrainResult } from './train/types';

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const ctx = await context(opts);
  const p = plan(ctx);
  const fineTuningStepCost = FINE_TUNING_STEP_COST[stepsOnOnnxRuntime(ctx) ? 'onnxruntime' : 'tfjs'];
  const work = plannedWork(p, { headEpochs: ctx.cfg.featureExtraction.epochs, fineTuningEpochs: ctx.cfg.fineTuning.epochs, fineTuningStepCost });
  const res = new RunResources(work, ctx.emit);
  try {
    const prepared = await prepare(ctx, p, res);
    let trained: Trained;
    let network: Network;
    let sets: Sets;
    let extracted: Extracted | null = null;
    let labelIssues: LabelIssues;
    let refitted: Refit | null = null;
    let chosen: SavedWeights | null = null;
    if (p.method === 'scratch') {
      sets = await prepared.sets();
      const scratch = await trainScratch(ctx, p, res, sets);
      trained = scratch;
      network = { model: scratch.model };
      labelIssues = labelIssuesUnavailable(ctx, p)!;
    } else {
      const transfer = await setUpTransfer(ctx, p, res);
      extracted = await extract(ctx, p, res, transfer, prepared);
      sets = extracted.sets;
      labelIssues = await findLabelIssues(ctx, p, extracted);
      if (labelIssues.available) await ctx.opts.onLabelIssues?.(labelIssues);
      const start = p.refit ? await saveWeights(transfer) : null;
      trained = await trainHead(ctx, p, res, transfer, extracted);
      if (transfer.parts) trained = await fineTune(ctx, p, res, transfer, extracted);
      if (start) {
        chosen = await saveWeights(transfer);
        refitted = await refit(ctx, p, res, transfer, extracted, start);
        if (!refitted) chosen = null;
      }
      network = { transfer };
    }
    let features: TrainedFeatures | null = null;
    if ('transfer' in network && extracted) {
      features = res.own(await trainedFeatures(ctx, network.transfer), (f) => f.dispose(), 'trained features');
    }
    const validationStore = extracted && 'transfer' in network ? trainedPartStores(network.transfer, extracted).validation : null;
    const evaluation = await evaluate(ctx, p, res, trained, sets, network, features && { trained: features, validation: validationStore, chosen });
    const { validation, test, calibration, predictions } = evaluation;
    const ood =
      'transfer' in network && extracted && features
        ? await outOfDistributionStats(ctx, p, network.transfer, extracted, features, evaluation.validationFeatures)
        : null;
    const { graft, artifacts } = await exportModel(ctx, p, res, network, calibration, ood);
    return {
      artifacts,
      history: p.history,
      test,
      validation,
      predictions,
      exportedValidationClasses: evaluation.exportedValidationClasses,
      labelIssues,
      refit: refitted,
      labels: ctx.labels,
      graft,
      counts: { train: sets.train.images.length, validation: sets.validation.images.length, test: sets.test.images.length, skipped: sets.skipped },
    };
  } catch (err) {
    if (ctx.signal?.aborted && !(err instanceof AbortError)) throw new AbortError();
    throw err;
  } finally {
    await res.dispose();
  }
}

/** The run's context: the backend started, the labels checked. */
async function context(opts: TrainOptions): Promise<TrainContext> {
  const log: LogFn = opts.log ?? (() => {});
  const labels = [...opts.labels];
  const numClasses = labels.length;
  if (numClasses < 2) throw new VisionError('TOO_FEW_CLASSES', `training needs at least two classes (got ${numClasses})`);
  const kind: LossKind = numClasses === 2 ? 'binary' : 'categorical';
  const backend = await initBackend({ log });
  throwIfAborted(opts.signal);
  return { opts, cfg: opts.config, labels, numClasses, kind, backend, attempt: opts.attempt ?? 1, signal: opts.signal, log, emit: (e: TrainEvent) => opts.onEvent?.(e) };
}

// Phase "head": trains the new head on frozen features, from the cache (extract.ts) or, with end-to-end
// augmentation, on new augmented images through the frozen part every epoch. Skipped where the run resumes
// from a fine-tuning checkpoint (the head's weights are in it).
import type * as tf from '@tensorflow/tfjs';
import type { BatchSource, Forward } from '../fit';
import { createStepEngine } from '../step-engine';
import { augmentedTrainSource, type Extracted } from './extract';
import { runEpochs, type EpochsOptions } from './epochs';
import type { Plan } from './plan';
import type { RunResources } from './resources';
import type { Transfer } from './transfer';
import type { TrainContext, Trained } from './types';

/** The head's epochs on `train`, validated on `validation` (also the refit's, train/refit.ts). */
export function headEpochs(ctx: TrainContext, t: Transfer, train: BatchSource, validation: BatchSource | null): EpochsOptions {
  const { cfg } = ctx;
  const variables = t.head.trainableWeights;
  const gradientEngine = (optimizer: tf.Optimizer) => createStepEngine({ block: [], head: t.head, inputShape: t.pooledShape, loss: ctx.kind, variables, optimizer, seed: cfg.seed, engine: ctx.opts.trainEngine, log: ctx.log, what: 'head' });
  return { phase: 'training_head', settings: cfg.featureExtraction, variables, forward: headForward(t), train, validation, gradientEngine };
}

const headForward = (t: Transfer): Forward => (xs, training) => t.head.classify(xs[0]!, training);

export async function trainHead(ctx: TrainContext, p: Plan, res: RunResources, t: Transfer, x: Extracted): Promise<Trained> {
  if (!p.skipHead) {
    const train: BatchSource = x.headTrain ?? augmentedTrainSource(ctx, p, x, { forward: t.headFeatures, shapes: [t.pooledShape], pixels: t.base.pixels }, t);
    await runEpochs(ctx, p, res, headEpochs(ctx, t, train, x.headVal));
  }
  // The top block's copy from before fine-tuning is not needed any more.
  await t.upper?.dispose();
  return { forward: headForward(t), validation: x.headVal };
}

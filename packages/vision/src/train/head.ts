// Phase "head": trains the new head on frozen features, from the cache (extract.ts) or, with end-to-end
// augmentation, on new augmented images through the frozen part every epoch. Skipped where the run resumes
// from a fine-tuning checkpoint (the head's weights are in it).
import type * as tf from '@tensorflow/tfjs';
import type { BatchSource, Forward } from '../fit';
import { createStepEngine } from '../step-engine';
import { augmentedTrainSource, type Extracted } from './extract';
import { runEpochs } from './epochs';
import type { Plan } from './plan';
import type { RunResources } from './resources';
import type { Transfer } from './transfer';
import type { TrainContext, Trained } from './types';

export async function trainHead(ctx: TrainContext, p: Plan, res: RunResources, t: Transfer, x: Extracted): Promise<Trained> {
  const { cfg } = ctx;
  const forward: Forward = (xs, training) => t.head.classify(xs[0]!, training);
  if (!p.skipHead) {
    const train: BatchSource = x.headTrain ?? augmentedTrainSource(ctx, p, x, { forward: t.headFeatures, shapes: [t.pooledShape] }, t);
    const variables = t.head.trainableWeights;
    const gradientEngine = (optimizer: tf.Optimizer) => createStepEngine({ block: [], head: t.head, inputShape: t.pooledShape, loss: ctx.kind, variables, optimizer, seed: cfg.seed, engine: ctx.opts.trainEngine, log: ctx.log, what: 'head' });
    await runEpochs(ctx, p, res, { phase: 'training_head', settings: cfg.featureExtraction, variables, forward, train, validation: x.headVal, gradientEngine });
  }
  // The top block's copy from before fine-tuning is not needed any more.
  await t.upper?.dispose();
  return { forward, validation: x.headVal };
}

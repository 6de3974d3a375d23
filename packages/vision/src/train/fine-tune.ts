// Phase "fine-tune": trains the backbone's top block together with the head, on the cached outputs of the frozen
// part below it (one augmented copy of each image per epoch) or, with end-to-end augmentation, on new augmented
// images through the frozen part every epoch. The batch-normalization layers of the block stay frozen. The head's
// best validation loss is the mark to beat: where no fine-tuning epoch validates lower, the model stays as the head
// phase left it.
import { fineTuneForward } from '../fine-tune';
import { bestRow } from '@graft/contract';
import { readWeights, type BatchSource } from '../fit';
import { variableRefs, type ReplicaSpec } from '../replicas';
import { createStepEngine } from '../step-engine';
import { augmentedTrainSource, type Extracted } from './extract';
import { runEpochs, type EpochsOptions } from './epochs';
import type { Plan } from './plan';
import type { RunResources } from './resources';
import type { Transfer } from './transfer';
import type { TrainContext, Trained } from './types';

export async function fineTune(ctx: TrainContext, p: Plan, res: RunResources, t: Transfer, x: Extracted): Promise<Trained> {
  const train: BatchSource = x.lowerTrain ?? augmentedTrainSource(ctx, p, x, { forward: t.lowerOutputs, shapes: t.lowerShapes, pixels: t.base.pixels }, t);
  const epochs = fineTuningEpochs(ctx, t, train, x.lowerVal);
  await runEpochs(ctx, p, res, { ...epochs, startingValLoss: bestRow(p.history, 'training_head')?.valLoss ?? null });
  return { forward: epochs.forward, validation: x.lowerVal };
}

/** The top block's and the head's epochs on `train`, validated on `validation` (also the refit's, train/refit.ts). */
export function fineTuningEpochs(ctx: TrainContext, t: Transfer, train: BatchSource, validation: BatchSource | null): EpochsOptions {
  const { cfg } = ctx;
  const parts = t.parts!;
  const forward = fineTuneForward(parts, t.head);
  const variables = [...parts.blockWeights, ...t.head.trainableWeights];
  const replicaSpec = async (): Promise<ReplicaSpec> => ({
    topology: parts.upper.toJSON(null, false) as object,
    weights: await readWeights(parts.upper.weights),
    head: { featureShape: t.featureShape, numClasses: ctx.numClasses, config: cfg.head, seed: cfg.seed },
    loss: ctx.kind,
    numClasses: ctx.numClasses,
    variables: variableRefs(parts.upper, t.head.layers, variables),
    backend: ctx.backend,
  });
  return {
    phase: 'fine_tuning',
    settings: cfg.fineTuning,
    variables,
    forward,
    train,
    validation,
    extraLoss: parts.regularization,
    replicaSpec,
    gradientEngine: async (optimizer) =>
      t.lowerShapes.length === 1
        ? createStepEngine({ block: parts.upper.layers, head: t.head, inputShape: t.lowerShapes[0]!, loss: ctx.kind, variables, optimizer, seed: cfg.seed, engine: ctx.opts.trainEngine, log: ctx.log, what: 'fine-tuning' })
        : null,
  };
}

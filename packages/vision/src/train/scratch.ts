// The scratch method's training: the small Keras convnet (../scratch.ts) from random weights on [0, 1] pixels,
// new augmented images every epoch, its steps shared with worker-thread replicas where the backend uses one core.
// It trains in the 'training_head' phase of the history, as the whole network is the trained part.
import * as tf from '@tensorflow/tfjs';
import { ImageSource } from '../features';
import { readWeights, type Forward } from '../fit';
import { disposeWeights } from '../graph';
import { variableRefs, type ReplicaSpec } from '../replicas';
import { buildScratchModel } from '../scratch';
import { runEpochs } from './epochs';
import type { Plan } from './plan';
import type { Sets } from './prepare';
import type { RunResources } from './resources';
import { INFERENCE_BATCH, type ImageSet, type TrainContext, type Trained } from './types';

export async function trainScratch(ctx: TrainContext, p: Plan, res: RunResources, sets: Sets): Promise<Trained & { model: tf.LayersModel }> {
  const { cfg } = ctx;
  const model = res.own(buildScratchModel(p.size, ctx.numClasses, cfg.head.dropout, cfg.seed), (m) => disposeWeights(m), 'scratch model');
  const forward: Forward = (xs, training) => model.apply(xs[0]!, { training }) as tf.Tensor;
  const source = (set: ImageSet, augmentation: typeof p.augmentation, batchSize: number) =>
    new ImageSource({ ...set, size: p.size, preprocessing: p.preprocessing, augmentation, frozen: null, kind: ctx.kind, numClasses: ctx.numClasses, batchSize, seed: cfg.seed });
  const validation = sets.validation.images.length ? source(sets.validation, null, INFERENCE_BATCH) : null;
  const replicaSpec = async (): Promise<ReplicaSpec> => ({
    topology: model.toJSON(null, false) as object,
    weights: await readWeights(model.weights),
    head: null,
    loss: ctx.kind,
    numClasses: ctx.numClasses,
    variables: variableRefs(model, [], model.trainableWeights),
    backend: ctx.backend,
  });
  await runEpochs(ctx, p, res, {
    phase: 'training_head',
    settings: cfg.featureExtraction,
    variables: model.trainableWeights,
    forward,
    train: source(sets.train, p.augmentation, cfg.batchSize),
    validation,
    replicaSpec,
  });
  return { forward, validation, model };
}

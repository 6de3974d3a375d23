// Fine-tuning: the backbone is split before its top block (or config.fineTuning.fromLayer); the lower part stays
// frozen, so its outputs can be computed once per image and cached, and the top block is trained together with
// the head on them. Batch normalization stays in inference mode (moving statistics untouched, scale and offset
// frozen), as Keras recommends when fine-tuning a pretrained base on little data.
import * as tf from '@tensorflow/tfjs';
import type { Forward } from './fit';
import { splitModel, type ModelSplit } from './graph';
import type { Head } from './head';

export interface FineTuneParts extends ModelSplit {
  /** Weights of the top block that are trained (batch normalization excluded). */
  blockWeights: tf.LayerVariable[];
  /** The top block's weight-regularization losses (e.g. L2 kernels), or null where it has none. */
  regularization(): tf.Scalar | null;
}

function isBatchNorm(l: tf.layers.Layer): boolean {
  return l.getClassName() === 'BatchNormalization';
}

export function prepareFineTuning(backbone: tf.LayersModel, fromLayer: string): FineTuneParts {
  const split = splitModel(backbone, fromLayer);
  const trained = split.upperLayers.filter((l) => !isBatchNorm(l));
  const blockWeights = trained.flatMap((l) => l.trainableWeights);
  return {
    ...split,
    blockWeights,
    regularization: () => {
      const terms = trained.flatMap((l) => l.calculateLosses());
      return terms.length ? (tf.addN(terms) as tf.Scalar) : null;
    },
  };
}

/** Applies the upper part in inference mode to its inputs. */
export function applyUpper(upper: tf.LayersModel, xs: tf.Tensor[]): tf.Tensor {
  return upper.apply(xs.length === 1 ? xs[0]! : xs, { training: false }) as tf.Tensor;
}

/** Applies the lower part; always a list, one tensor per input of the upper part. */
export function applyLower(lower: tf.LayersModel, x: tf.Tensor): tf.Tensor[] {
  const out = lower.apply(x, { training: false }) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
}

/** Probabilities from the lower part's outputs: top block (inference mode), pooling, head. */
export function fineTuneForward(parts: FineTuneParts, head: Head): Forward {
  return (xs, training) => head.classify(head.pooled(applyUpper(parts.upper, xs)), training);
}

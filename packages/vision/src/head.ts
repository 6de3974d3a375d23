// The classification head put on a backbone's feature map: pooling (flatten, global average or global max), an
// optional Dense+ReLU hidden layer, Dropout, and the output layer (1 sigmoid unit for two classes, softmax
// otherwise). Pooling has no weights, so features can be pooled once and the rest trained on the vectors.
import * as tf from '@tensorflow/tfjs';
import { deriveSeed } from './random';

export interface HeadConfig {
  pooling: 'flatten' | 'avg' | 'max';
  units: number;
  dropout: number;
}

export type OutputActivation = 'sigmoid' | 'softmax';

export function outputActivation(numClasses: number): OutputActivation {
  return numClasses === 2 ? 'sigmoid' : 'softmax';
}

/** Prefix of every head layer's name (they must not collide with backbone layer names). */
export const HEAD_PREFIX = 'graft_head';

export class Head {
  /** Pooling of a feature map into a vector; null where the features already are vectors. */
  readonly pool: tf.layers.Layer | null;
  /** The layers after pooling, in order. */
  readonly layers: tf.layers.Layer[];
  readonly activation: OutputActivation;

  constructor(
    readonly featureShape: number[],
    readonly numClasses: number,
    readonly config: HeadConfig,
    seed: number,
  ) {
    this.activation = outputActivation(numClasses);
    if (featureShape.length === 1) this.pool = null;
    else if (config.pooling === 'avg') this.pool = tf.layers.globalAveragePooling2d({ name: `${HEAD_PREFIX}_pool` });
    else if (config.pooling === 'max') this.pool = tf.layers.globalMaxPooling2d({ name: `${HEAD_PREFIX}_pool` });
    else this.pool = tf.layers.flatten({ name: `${HEAD_PREFIX}_flatten` });
    const init = (k: string) => tf.initializers.glorotUniform({ seed: deriveSeed(seed, 'head', k) % 2147483647 });
    const layers: tf.layers.Layer[] = [];
    if (config.units > 0) {
      layers.push(tf.layers.dense({ units: config.units, activation: 'relu', kernelInitializer: init('hidden'), name: `${HEAD_PREFIX}_dense` }));
    }
    if (config.dropout > 0) layers.push(tf.layers.dropout({ rate: config.dropout, name: `${HEAD_PREFIX}_dropout` }));
    layers.push(
      tf.layers.dense({
        units: numClasses === 2 ? 1 : numClasses,
        activation: this.activation,
        kernelInitializer: init('output'),
        name: `${HEAD_PREFIX}_predictions`,
      }),
    );
    this.layers = layers;
    // Build the weights now, so they exist before the first training step and can be restored into.
    const probe = tf.input({ shape: [this.pooledSize] });
    let y: tf.SymbolicTensor = probe;
    for (const l of this.layers) y = l.apply(y) as tf.SymbolicTensor;
  }

  /** Length of the pooled feature vector. */
  get pooledSize(): number {
    const s = this.featureShape;
    if (s.length === 1) return s[0]!;
    return this.config.pooling === 'flatten' ? s.reduce((a, b) => a * b, 1) : s[s.length - 1]!;
  }

  /** Pools feature maps [n, ...featureShape] into vectors [n, pooledSize]. */
  pooled(features: tf.Tensor): tf.Tensor2D {
    return (this.pool ? this.pool.apply(features) : features) as tf.Tensor2D;
  }

  /** Class probabilities from pooled vectors; `training` turns dropout on. */
  classify(vectors: tf.Tensor, training: boolean): tf.Tensor2D {
    let y = vectors;
    for (const l of this.layers) y = l.apply(y, { training }) as tf.Tensor;
    return y as tf.Tensor2D;
  }

  /** The head on a symbolic feature map, for building the exported model. */
  applySymbolic(features: tf.SymbolicTensor): tf.SymbolicTensor {
    let y = this.pool ? (this.pool.apply(features) as tf.SymbolicTensor) : features;
    for (const l of this.layers) y = l.apply(y) as tf.SymbolicTensor;
    return y;
  }

  /** The trainable weights. */
  get trainableWeights(): tf.LayerVariable[] {
    return this.layers.flatMap((l) => l.trainableWeights);
  }

  dispose(): void {
    for (const l of this.layers) for (const w of l.weights) if (!(w as any).val.isDisposed) w.dispose();
  }
}

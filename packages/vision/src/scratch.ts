// The small convnet trained from scratch in the Keras small-data recipe: four Conv2D 3x3 + ReLU blocks (32, 64,
// 128, 128 filters), each followed by 2x2 max pooling, then Flatten, Dropout, Dense 512 ReLU and the output.
import * as tf from '@tensorflow/tfjs';
import { HEAD_PREFIX, outputActivation } from './head';
import { deriveSeed } from './random';

export const SCRATCH_INPUT_SIZE = 150;

export function buildScratchModel(inputSize: number, numClasses: number, dropout: number, seed: number): tf.LayersModel {
  const init = (k: string) => tf.initializers.glorotUniform({ seed: deriveSeed(seed, 'scratch', k) % 2147483647 });
  const input = tf.input({ shape: [inputSize, inputSize, 3], name: 'image' });
  let x: tf.SymbolicTensor = input;
  [32, 64, 128, 128].forEach((filters, i) => {
    x = tf.layers
      .conv2d({ filters, kernelSize: 3, activation: 'relu', kernelInitializer: init(`conv${i}`), name: `conv${i + 1}` })
      .apply(x) as tf.SymbolicTensor;
    x = tf.layers.maxPooling2d({ poolSize: 2, name: `pool${i + 1}` }).apply(x) as tf.SymbolicTensor;
  });
  x = tf.layers.flatten({ name: 'flatten' }).apply(x) as tf.SymbolicTensor;
  if (dropout > 0) x = tf.layers.dropout({ rate: dropout, name: 'dropout' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 512, activation: 'relu', kernelInitializer: init('dense'), name: 'dense' }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({
      units: numClasses === 2 ? 1 : numClasses,
      activation: outputActivation(numClasses),
      kernelInitializer: init('output'),
      name: `${HEAD_PREFIX}_predictions`,
    })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'graft_scratch' });
}

// VGG16 and VGG19 without the fully-connected top (keras.applications.vgg16 / vgg19, include_top=False).
import type * as tf from '@tensorflow/tfjs';
import { type BuildOptions, checkInputSize, LayerKit } from './common';

export const VGG_MIN_INPUT_SIZE = 32;

/** Convolutions per block: VGG16 has 2, 2, 3, 3, 3; VGG19 has 2, 2, 4, 4, 4. */
const BLOCKS: Record<'vgg16' | 'vgg19', number[]> = {
  vgg16: [2, 2, 3, 3, 3],
  vgg19: [2, 2, 4, 4, 4],
};
const FILTERS = [64, 128, 256, 512, 512];

export function buildVgg(depth: 'vgg16' | 'vgg19', inputSize: number, opts: BuildOptions = {}): tf.LayersModel {
  checkInputSize(depth, inputSize, VGG_MIN_INPUT_SIZE);
  const k = new LayerKit(opts);
  const input = k.input(inputSize);
  let x = input;
  BLOCKS[depth].forEach((convs, b) => {
    for (let c = 1; c <= convs; c++) {
      x = k.conv(x, `block${b + 1}_conv${c}`, FILTERS[b], 3, { padding: 'same', activation: 'relu' });
    }
    x = k.maxPool(x, `block${b + 1}_pool`, 2, 2);
  });
  return k.model(input, x, opts.name ?? depth);
}

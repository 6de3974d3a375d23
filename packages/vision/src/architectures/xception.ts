// Xception without the top (keras.applications.xception, include_top=False). The unnamed layers of the Keras
// implementation (the four residual projections and the adds) carry the names Keras 2 gave them in the published
// weight file: conv2d_1 .. conv2d_4, batch_normalization_1 .. batch_normalization_4, add_1 .. add_12.
import type * as tf from '@tensorflow/tfjs';
import { type BuildOptions, checkInputSize, LayerKit, type Sym } from './common';

export const XCEPTION_MIN_INPUT_SIZE = 71;

export function buildXception(inputSize: number, opts: BuildOptions = {}): tf.LayersModel {
  checkInputSize('xception', inputSize, XCEPTION_MIN_INPUT_SIZE);
  const k = new LayerKit(opts);
  let residualN = 0;
  let addN = 0;
  const residual = (x: Sym, filters: number): Sym => {
    residualN++;
    const r = k.conv(x, `conv2d_${residualN}`, filters, 1, { strides: 2, padding: 'same', useBias: false });
    return k.bn(r, `batch_normalization_${residualN}`);
  };
  const add = (a: Sym, b: Sym): Sym => k.add([a, b], `add_${++addN}`);
  const sepBn = (x: Sym, name: string, filters: number): Sym => k.bn(k.separable(x, name, filters), `${name}_bn`);

  const input = k.input(inputSize);
  let x = k.conv(input, 'block1_conv1', 32, 3, { strides: 2, useBias: false });
  x = k.bn(x, 'block1_conv1_bn');
  x = k.relu(x, 'block1_conv1_act');
  x = k.conv(x, 'block1_conv2', 64, 3, { useBias: false });
  x = k.bn(x, 'block1_conv2_bn');
  x = k.relu(x, 'block1_conv2_act');

  // Entry flow. Block 2 has no ReLU before its first separable convolution; the ReLU between its two
  // convolutions is named block2_sepconv2_act, as in Keras.
  let r = residual(x, 128);
  x = sepBn(x, 'block2_sepconv1', 128);
  x = k.relu(x, 'block2_sepconv2_act');
  x = sepBn(x, 'block2_sepconv2', 128);
  x = k.maxPool(x, 'block2_pool', 3, 2, 'same');
  x = add(x, r);

  for (const [block, filters] of [
    [3, 256],
    [4, 728],
  ] as const) {
    r = residual(x, filters);
    x = k.relu(x, `block${block}_sepconv1_act`);
    x = sepBn(x, `block${block}_sepconv1`, filters);
    x = k.relu(x, `block${block}_sepconv2_act`);
    x = sepBn(x, `block${block}_sepconv2`, filters);
    x = k.maxPool(x, `block${block}_pool`, 3, 2, 'same');
    x = add(x, r);
  }

  // Middle flow: blocks 5 .. 12.
  for (let block = 5; block <= 12; block++) {
    r = x;
    for (let c = 1; c <= 3; c++) {
      x = k.relu(x, `block${block}_sepconv${c}_act`);
      x = sepBn(x, `block${block}_sepconv${c}`, 728);
    }
    x = add(x, r);
  }

  // Exit flow.
  r = residual(x, 1024);
  x = k.relu(x, 'block13_sepconv1_act');
  x = sepBn(x, 'block13_sepconv1', 728);
  x = k.relu(x, 'block13_sepconv2_act');
  x = sepBn(x, 'block13_sepconv2', 1024);
  x = k.maxPool(x, 'block13_pool', 3, 2, 'same');
  x = add(x, r);

  x = sepBn(x, 'block14_sepconv1', 1536);
  x = k.relu(x, 'block14_sepconv1_act');
  x = sepBn(x, 'block14_sepconv2', 2048);
  x = k.relu(x, 'block14_sepconv2_act');

  return k.model(input, x, opts.name ?? 'xception');
}

// MobileNet v1 without the top (keras.applications.mobilenet, include_top=False), width multiplier alpha
// 0.25 / 0.5 / 0.75 / 1.0, depth multiplier 1. Layer names follow Keras (conv1, conv1_bn, conv1_relu, conv_dw_1,
// conv_dw_1_bn, ..., conv_pw_13_relu), which are also the names in the TensorFlow.js MobileNet layers models.
import type * as tf from '@tensorflow/tfjs';
import { type BuildOptions, checkInputSize, LayerKit, type Sym } from './common';

export const MOBILENET_MIN_INPUT_SIZE = 32;
export const MOBILENET_ALPHAS = [0.25, 0.5, 0.75, 1.0] as const;
export type MobileNetAlpha = (typeof MOBILENET_ALPHAS)[number];

/** Pointwise filters and stride of depthwise-separable blocks 1 .. 13 (before the width multiplier). */
const BLOCKS: [filters: number, stride: number][] = [
  [64, 1],
  [128, 2],
  [128, 1],
  [256, 2],
  [256, 1],
  [512, 2],
  [512, 1],
  [512, 1],
  [512, 1],
  [512, 1],
  [512, 1],
  [1024, 2],
  [1024, 1],
];

/** The model name Keras uses: `mobilenet_<alpha with 2 decimals>_<rows>`. */
export function mobileNetName(alpha: number, inputSize: number): string {
  return `mobilenet_${alpha.toFixed(2)}_${inputSize}`;
}

export function buildMobileNet(alpha: MobileNetAlpha, inputSize: number, opts: BuildOptions = {}): tf.LayersModel {
  if (!MOBILENET_ALPHAS.includes(alpha)) {
    throw new RangeError(`mobilenet: alpha must be one of ${MOBILENET_ALPHAS.join(', ')} (received ${alpha})`);
  }
  checkInputSize(`mobilenet_v1_${alpha.toFixed(2)}`, inputSize, MOBILENET_MIN_INPUT_SIZE);
  const k = new LayerKit(opts);
  const input = k.input(inputSize);

  // A strided 3x3 convolution pads one row and column at the bottom and right, then convolves 'valid'.
  const stridedPad: [[number, number], [number, number]] = [
    [0, 1],
    [0, 1],
  ];
  let x: Sym = k.pad(input, 'conv1_pad', stridedPad);
  x = k.conv(x, 'conv1', Math.trunc(32 * alpha), 3, { strides: 2, useBias: false });
  x = k.bn(x, 'conv1_bn');
  x = k.relu6(x, 'conv1_relu');

  BLOCKS.forEach(([filters, stride], i) => {
    const id = i + 1;
    if (stride === 2) x = k.pad(x, `conv_pad_${id}`, stridedPad);
    x = k.depthwise(x, `conv_dw_${id}`, { strides: stride, padding: stride === 1 ? 'same' : 'valid' });
    x = k.bn(x, `conv_dw_${id}_bn`);
    x = k.relu6(x, `conv_dw_${id}_relu`);
    x = k.conv(x, `conv_pw_${id}`, Math.trunc(filters * alpha), 1, { padding: 'same', useBias: false });
    x = k.bn(x, `conv_pw_${id}_bn`);
    x = k.relu6(x, `conv_pw_${id}_relu`);
  });

  return k.model(input, x, opts.name ?? mobileNetName(alpha, inputSize));
}

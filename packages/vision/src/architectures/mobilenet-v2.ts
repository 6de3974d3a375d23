// MobileNetV2 without the top (keras.applications.mobilenet_v2, include_top=False), width multiplier alpha
// 0.35 / 0.5 / 0.75 / 1.0 / 1.3 / 1.4, with Keras's layer names (Conv1, bn_Conv1, Conv1_relu, expanded_conv_*,
// block_1_expand, ..., Conv_1, Conv_1_bn, out_relu).
import type * as tf from '@tensorflow/tfjs';
import { type BuildOptions, checkInputSize, LayerKit, type Sym } from './common';

export const MOBILENET_V2_MIN_INPUT_SIZE = 32;
export const MOBILENET_V2_ALPHAS = [0.35, 0.5, 0.75, 1.0, 1.3, 1.4] as const;
export type MobileNetV2Alpha = (typeof MOBILENET_V2_ALPHAS)[number];

const BN = { epsilon: 1e-3, momentum: 0.999 };

/** Inverted residual blocks 0 .. 16: output filters (before alpha), stride, expansion. */
const BLOCKS: [filters: number, stride: number, expansion: number][] = [
  [16, 1, 1],
  [24, 2, 6],
  [24, 1, 6],
  [32, 2, 6],
  [32, 1, 6],
  [32, 1, 6],
  [64, 2, 6],
  [64, 1, 6],
  [64, 1, 6],
  [64, 1, 6],
  [96, 1, 6],
  [96, 1, 6],
  [96, 1, 6],
  [160, 2, 6],
  [160, 1, 6],
  [160, 1, 6],
  [320, 1, 6],
];

/** Rounds a channel count to a multiple of `divisor`, never going below 90% of it (Keras `_make_divisible`). */
export function makeDivisible(v: number, divisor = 8): number {
  let n = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  if (n < 0.9 * v) n += divisor;
  return n;
}

/** Zero padding before a strided 3x3 depthwise convolution (Keras `correct_pad`): equals TF 'same' padding. */
function correctPad(size: number): [[number, number], [number, number]] {
  const adjust = 1 - (size % 2);
  return [
    [1 - adjust, 1],
    [1 - adjust, 1],
  ];
}

/** The model name Keras uses: `mobilenetv2_<alpha with 2 decimals>_<rows>`. */
export function mobileNetV2Name(alpha: number, inputSize: number): string {
  return `mobilenetv2_${alpha.toFixed(2)}_${inputSize}`;
}

export function buildMobileNetV2(alpha: MobileNetV2Alpha, inputSize: number, opts: BuildOptions = {}): tf.LayersModel {
  if (!MOBILENET_V2_ALPHAS.includes(alpha)) {
    throw new RangeError(`mobilenet_v2: alpha must be one of ${MOBILENET_V2_ALPHAS.join(', ')} (received ${alpha})`);
  }
  checkInputSize(`mobilenet_v2_${alpha}`, inputSize, MOBILENET_V2_MIN_INPUT_SIZE);
  const k = new LayerKit(opts);
  const input = k.input(inputSize);

  let x: Sym = k.conv(input, 'Conv1', makeDivisible(32 * alpha), 3, { strides: 2, padding: 'same', useBias: false });
  x = k.bn(x, 'bn_Conv1', BN);
  x = k.relu6(x, 'Conv1_relu');

  BLOCKS.forEach(([filters, stride, expansion], id) => {
    const inputs = x;
    const inChannels = x.shape[3] as number;
    const pointwiseFilters = makeDivisible(Math.trunc(filters * alpha));
    let prefix = 'expanded_conv_';
    if (id > 0) {
      prefix = `block_${id}_`;
      x = k.conv(x, `${prefix}expand`, expansion * inChannels, 1, { padding: 'same', useBias: false });
      x = k.bn(x, `${prefix}expand_BN`, BN);
      x = k.relu6(x, `${prefix}expand_relu`);
    }
    if (stride === 2) x = k.pad(x, `${prefix}pad`, correctPad(x.shape[1] as number));
    x = k.depthwise(x, `${prefix}depthwise`, { strides: stride, padding: stride === 1 ? 'same' : 'valid' });
    x = k.bn(x, `${prefix}depthwise_BN`, BN);
    x = k.relu6(x, `${prefix}depthwise_relu`);
    x = k.conv(x, `${prefix}project`, pointwiseFilters, 1, { padding: 'same', useBias: false });
    x = k.bn(x, `${prefix}project_BN`, BN);
    if (inChannels === pointwiseFilters && stride === 1) x = k.add([inputs, x], `${prefix}add`);
  });

  const lastFilters = alpha > 1.0 ? makeDivisible(1280 * alpha) : 1280;
  x = k.conv(x, 'Conv_1', lastFilters, 1, { useBias: false });
  x = k.bn(x, 'Conv_1_bn', BN);
  x = k.relu6(x, 'out_relu');

  return k.model(input, x, opts.name ?? mobileNetV2Name(alpha, inputSize));
}

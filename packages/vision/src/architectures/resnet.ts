// ResNet50 (v1) without the top (keras.applications.resnet.ResNet50, include_top=False), with the layer names
// of the current Keras implementation: conv1_pad, conv1_conv, conv1_bn, ..., conv5_block3_out.
import type * as tf from '@tensorflow/tfjs';
import { type BuildOptions, checkInputSize, LayerKit, type Sym } from './common';

export const RESNET_MIN_INPUT_SIZE = 32;
const BN_EPSILON = 1.001e-5;

/** A bottleneck block: 1x1 (stride) -> 3x3 -> 1x1 (4x filters), plus the shortcut (projected when asked). */
function block1(k: LayerKit, x: Sym, filters: number, name: string, stride: number, convShortcut: boolean): Sym {
  let shortcut = x;
  if (convShortcut) {
    shortcut = k.conv(x, `${name}_0_conv`, 4 * filters, 1, { strides: stride });
    shortcut = k.bn(shortcut, `${name}_0_bn`, { epsilon: BN_EPSILON });
  }
  let y = k.conv(x, `${name}_1_conv`, filters, 1, { strides: stride });
  y = k.bn(y, `${name}_1_bn`, { epsilon: BN_EPSILON });
  y = k.relu(y, `${name}_1_relu`);
  y = k.conv(y, `${name}_2_conv`, filters, 3, { padding: 'same' });
  y = k.bn(y, `${name}_2_bn`, { epsilon: BN_EPSILON });
  y = k.relu(y, `${name}_2_relu`);
  y = k.conv(y, `${name}_3_conv`, 4 * filters, 1);
  y = k.bn(y, `${name}_3_bn`, { epsilon: BN_EPSILON });
  y = k.add([shortcut, y], `${name}_add`);
  return k.relu(y, `${name}_out`);
}

function stack1(k: LayerKit, x: Sym, filters: number, blocks: number, stride1: number, name: string): Sym {
  x = block1(k, x, filters, `${name}_block1`, stride1, true);
  for (let i = 2; i <= blocks; i++) x = block1(k, x, filters, `${name}_block${i}`, 1, false);
  return x;
}

export function buildResNet50(inputSize: number, opts: BuildOptions = {}): tf.LayersModel {
  checkInputSize('resnet50', inputSize, RESNET_MIN_INPUT_SIZE);
  const k = new LayerKit(opts);
  const input = k.input(inputSize);
  let x = k.pad(input, 'conv1_pad', [
    [3, 3],
    [3, 3],
  ]);
  x = k.conv(x, 'conv1_conv', 64, 7, { strides: 2 });
  x = k.bn(x, 'conv1_bn', { epsilon: BN_EPSILON });
  x = k.relu(x, 'conv1_relu');
  x = k.pad(x, 'pool1_pad', [
    [1, 1],
    [1, 1],
  ]);
  x = k.maxPool(x, 'pool1_pool', 3, 2);
  x = stack1(k, x, 64, 3, 1, 'conv2');
  x = stack1(k, x, 128, 4, 2, 'conv3');
  x = stack1(k, x, 256, 6, 2, 'conv4');
  x = stack1(k, x, 512, 3, 2, 'conv5');
  return k.model(input, x, opts.name ?? 'resnet50');
}

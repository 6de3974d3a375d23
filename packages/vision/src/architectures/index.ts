// The registry of Keras Applications backbones: how to build each headless model, how its inputs are
// preprocessed, where its top block starts and which Keras weight file fits it.
import * as tf from '@tensorflow/tfjs';
import type { ArchitectureSpec, BuildOptions } from './common';
import { buildInceptionV3, INCEPTION_V3_MIN_INPUT_SIZE } from './inception-v3';
import { buildMobileNet, MOBILENET_ALPHAS, MOBILENET_MIN_INPUT_SIZE, type MobileNetAlpha } from './mobilenet';
import {
  buildMobileNetV2,
  MOBILENET_V2_ALPHAS,
  MOBILENET_V2_MIN_INPUT_SIZE,
  type MobileNetV2Alpha,
} from './mobilenet-v2';
import { buildResNet50, RESNET_MIN_INPUT_SIZE } from './resnet';
import { buildVgg, VGG_MIN_INPUT_SIZE } from './vgg';
import { buildXception, XCEPTION_MIN_INPUT_SIZE } from './xception';

export * from './common';
export { buildVgg } from './vgg';
export { buildResNet50 } from './resnet';
export { buildInceptionV3 } from './inception-v3';
export { buildXception } from './xception';
export { buildMobileNet, MOBILENET_ALPHAS, type MobileNetAlpha } from './mobilenet';
export { buildMobileNetV2, MOBILENET_V2_ALPHAS, type MobileNetV2Alpha, makeDivisible } from './mobilenet-v2';
export { loadKerasH5Weights, type KerasH5LoadOptions, type KerasH5LoadResult } from './h5';

/** An alpha as Python's str(float(alpha)) writes it: 1.0, 0.75, 0.35; registry names use it too. */
const alphaKey = (alpha: number) => (Number.isInteger(alpha) ? alpha.toFixed(1) : String(alpha));

const vgg = (depth: 'vgg16' | 'vgg19', topBlockFirstLayer: string): ArchitectureSpec => ({
  family: 'vgg',
  defaultInputSize: 224,
  minInputSize: VGG_MIN_INPUT_SIZE,
  preprocessing: 'caffe',
  topBlockFirstLayer,
  featureLayer: 'block5_pool',
  kerasWeightsFile: () => `${depth}_weights_tf_dim_ordering_tf_kernels_notop.h5`,
  build: (inputSize, opts) => buildVgg(depth, inputSize, opts),
});

/** Keras publishes MobileNet v1 weights for inputs of 128, 160, 192 and 224, alpha written 1_0, 7_5, 5_0, 2_5. */
const mobileNet = (alpha: MobileNetAlpha): ArchitectureSpec => ({
  family: 'mobilenet',
  defaultInputSize: 224,
  minInputSize: MOBILENET_MIN_INPUT_SIZE,
  preprocessing: 'tf',
  topBlockFirstLayer: 'conv_dw_13',
  featureLayer: 'conv_pw_13_relu',
  kerasWeightsFile: (inputSize = 224) =>
    `mobilenet_${{ 1: '1_0', 0.75: '7_5', 0.5: '5_0', 0.25: '2_5' }[alpha]}_${inputSize}_tf_no_top.h5`,
  build: (inputSize, opts) => buildMobileNet(alpha, inputSize, opts),
});

/** Keras publishes MobileNetV2 weights for input sizes 96, 128, 160, 192 and 224. */
const mobileNetV2 = (alpha: MobileNetV2Alpha): ArchitectureSpec => ({
  family: 'mobilenet_v2',
  defaultInputSize: 224,
  minInputSize: MOBILENET_V2_MIN_INPUT_SIZE,
  preprocessing: 'tf',
  topBlockFirstLayer: 'block_13_expand',
  featureLayer: 'out_relu',
  kerasWeightsFile: (inputSize = 224) =>
    `mobilenet_v2_weights_tf_dim_ordering_tf_kernels_${alphaKey(alpha)}_${inputSize}_no_top.h5`,
  build: (inputSize, opts) => buildMobileNetV2(alpha, inputSize, opts),
});

/**
 * Names: vgg16, vgg19, resnet50, inception_v3, xception, mobilenet_v1_<alpha> (1.0, 0.75, 0.5, 0.25) and
 * mobilenet_v2_<alpha> (0.35, 0.5, 0.75, 1.0, 1.3, 1.4).
 */
export const ARCHITECTURES: Record<string, ArchitectureSpec> = {
  vgg16: vgg('vgg16', 'block5_conv1'),
  vgg19: vgg('vgg19', 'block5_conv1'),
  resnet50: {
    family: 'resnet',
    defaultInputSize: 224,
    minInputSize: RESNET_MIN_INPUT_SIZE,
    preprocessing: 'caffe',
    topBlockFirstLayer: 'conv5_block1_1_conv',
    featureLayer: 'conv5_block3_out',
    kerasWeightsFile: () => 'resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5',
    build: buildResNet50,
  },
  inception_v3: {
    family: 'inception',
    defaultInputSize: 299,
    minInputSize: INCEPTION_V3_MIN_INPUT_SIZE,
    preprocessing: 'tf',
    // The first layer after mixed8 (model.layers[249]): the top two inception blocks, mixed9 and mixed10,
    // are what the Keras fine-tuning example unfreezes.
    topBlockFirstLayer: 'conv2d_81',
    featureLayer: 'mixed10',
    kerasWeightsFile: () => 'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5',
    build: buildInceptionV3,
  },
  xception: {
    family: 'xception',
    defaultInputSize: 299,
    minInputSize: XCEPTION_MIN_INPUT_SIZE,
    preprocessing: 'tf',
    topBlockFirstLayer: 'block14_sepconv1',
    featureLayer: 'block14_sepconv2_act',
    kerasWeightsFile: () => 'xception_weights_tf_dim_ordering_tf_kernels_notop.h5',
    build: buildXception,
  },
  ...Object.fromEntries(MOBILENET_ALPHAS.map((a) => [`mobilenet_v1_${alphaKey(a)}`, mobileNet(a)])),
  ...Object.fromEntries(MOBILENET_V2_ALPHAS.map((a) => [`mobilenet_v2_${alphaKey(a)}`, mobileNetV2(a)])),
};

export type ArchitectureName = keyof typeof ARCHITECTURES;

export function getArchitecture(name: string): ArchitectureSpec {
  const spec = ARCHITECTURES[name];
  if (!spec) {
    throw new RangeError(`unknown architecture "${name}"; known: ${Object.keys(ARCHITECTURES).join(', ')}`);
  }
  return spec;
}

export interface ArchitectureDescription {
  /** All weights, as in a Keras summary's "Total params". */
  params: number;
  /** Trainable weights (everything except batch-normalization moving statistics) with the whole model trainable. */
  trainableParams: number;
  /** Shape of one feature map: [height, width, channels]. */
  featureShape: number[];
  /** Number of layers, the input layer included (`model.layers.length`). */
  layers: number;
}

const countParams = (ws: tf.LayerVariable[]) =>
  ws.reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);

/** Builds the headless model for `inputSize` (kernels as zeros, so this is cheap), describes it, and disposes it. */
export function describeArchitecture(name: string, inputSize: number): ArchitectureDescription {
  const model = getArchitecture(name).build(inputSize, { zeroInit: true } satisfies BuildOptions);
  try {
    const out = model.outputs[0].shape;
    return {
      params: countParams(model.weights),
      trainableParams: countParams(model.trainableWeights),
      featureShape: out.slice(1) as number[],
      layers: model.layers.length,
    };
  } finally {
    model.dispose();
  }
}

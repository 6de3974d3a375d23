// Shared pieces of the Keras Applications architectures: the spec type of the registry, the input-size check,
// and layer factories that apply the Keras defaults (channels-last, glorot-uniform kernels, BN epsilon 1e-3).
import type { ErrorCode } from '@graft/contract';
import * as tf from '@tensorflow/tfjs';

/** How raw RGB pixels in [0, 255] are prepared for a backbone (the `mode` of Keras's `preprocess_input`). */
export type Preprocessing = 'caffe' | 'tf' | 'torch';

export type ArchitectureFamily = 'vgg' | 'resnet' | 'inception' | 'xception' | 'mobilenet' | 'mobilenet_v2';

export interface BuildOptions {
  /** Model name; defaults to the name Keras gives the model (`vgg16`, `mobilenet_0.75_224`, ...). */
  name?: string;
  /**
   * Create kernels as zeros instead of random glorot-uniform values. Building is then faster, for models
   * whose weights are loaded right after (or that are only inspected).
   */
  zeroInit?: boolean;
}

export interface ArchitectureSpec {
  family: ArchitectureFamily;
  /** The input size the ImageNet weights were trained at. */
  defaultInputSize: number;
  /** The smallest input size Keras accepts for the headless model. */
  minInputSize: number;
  preprocessing: Preprocessing;
  /**
   * First layer of the top block: in `model.layers` order, this layer and every layer after it form the part
   * that fine-tuning unfreezes; every layer before it stays frozen.
   */
  topBlockFirstLayer: string;
  /** Name of the output layer of the headless model (the feature layer). */
  featureLayer: string;
  /** File name under which Keras publishes the headless ImageNet weights for this input size. */
  kerasWeightsFile(inputSize?: number): string;
  /** Builds the headless model (Keras `include_top=False`) for square RGB inputs of `inputSize` pixels. */
  build(inputSize: number, opts?: BuildOptions): tf.LayersModel;
}

/** An input size an architecture cannot take (below Keras's minimum, or not a whole number of pixels). */
export class InputSizeError extends RangeError {
  readonly code = 'INVALID_INPUT_SIZE' satisfies ErrorCode;
  readonly permanent = true;
  constructor(
    readonly architecture: string,
    readonly inputSize: number,
    readonly minInputSize: number,
  ) {
    super(
      `${architecture}: input size must be an integer of at least ${minInputSize} pixels ` +
        `(received ${inputSize}); the input is ${inputSize}x${inputSize}x3`,
    );
    this.name = 'InputSizeError';
  }
}

export function checkInputSize(architecture: string, inputSize: number, minInputSize: number): void {
  if (!Number.isInteger(inputSize) || inputSize < minInputSize) {
    throw new InputSizeError(architecture, inputSize, minInputSize);
  }
}

export type Sym = tf.SymbolicTensor;

/** Layer factories bound to one build's options. */
export class LayerKit {
  private readonly kernelInitializer: 'zeros' | 'glorotUniform';

  constructor(opts: BuildOptions = {}) {
    this.kernelInitializer = opts.zeroInit ? 'zeros' : 'glorotUniform';
  }

  input(inputSize: number, name = 'input_1'): Sym {
    return tf.input({ shape: [inputSize, inputSize, 3], name, dtype: 'float32' });
  }

  conv(
    x: Sym,
    name: string,
    filters: number,
    kernelSize: number | [number, number],
    o: { strides?: number; padding?: 'same' | 'valid'; useBias?: boolean; activation?: 'relu' } = {},
  ): Sym {
    return tf.layers
      .conv2d({
        name,
        filters,
        kernelSize,
        strides: o.strides ?? 1,
        padding: o.padding ?? 'valid',
        useBias: o.useBias ?? true,
        activation: o.activation,
        kernelInitializer: this.kernelInitializer,
        dataFormat: 'channelsLast',
      })
      .apply(x) as Sym;
  }

  depthwise(x: Sym, name: string, o: { strides?: number; padding?: 'same' | 'valid'; depthMultiplier?: number }): Sym {
    return tf.layers
      .depthwiseConv2d({
        name,
        kernelSize: 3,
        strides: o.strides ?? 1,
        padding: o.padding ?? 'valid',
        depthMultiplier: o.depthMultiplier ?? 1,
        useBias: false,
        depthwiseInitializer: this.kernelInitializer,
        dataFormat: 'channelsLast',
      })
      .apply(x) as Sym;
  }

  separable(x: Sym, name: string, filters: number): Sym {
    return tf.layers
      .separableConv2d({
        name,
        filters,
        kernelSize: 3,
        padding: 'same',
        useBias: false,
        depthwiseInitializer: this.kernelInitializer,
        pointwiseInitializer: this.kernelInitializer,
        dataFormat: 'channelsLast',
      })
      .apply(x) as Sym;
  }

  bn(x: Sym, name: string, o: { epsilon?: number; momentum?: number; scale?: boolean } = {}): Sym {
    return tf.layers
      .batchNormalization({
        name,
        axis: -1,
        epsilon: o.epsilon ?? 1e-3,
        momentum: o.momentum ?? 0.99,
        scale: o.scale ?? true,
        center: true,
      })
      .apply(x) as Sym;
  }

  relu(x: Sym, name: string): Sym {
    return tf.layers.activation({ name, activation: 'relu' }).apply(x) as Sym;
  }

  relu6(x: Sym, name: string): Sym {
    return tf.layers.reLU({ name, maxValue: 6 }).apply(x) as Sym;
  }

  pad(x: Sym, name: string, padding: [[number, number], [number, number]]): Sym {
    return tf.layers.zeroPadding2d({ name, padding }).apply(x) as Sym;
  }

  maxPool(x: Sym, name: string, poolSize: number, strides: number, padding: 'same' | 'valid' = 'valid'): Sym {
    return tf.layers.maxPooling2d({ name, poolSize, strides, padding }).apply(x) as Sym;
  }

  avgPool(x: Sym, name: string, poolSize: number, strides: number, padding: 'same' | 'valid' = 'valid'): Sym {
    return tf.layers.averagePooling2d({ name, poolSize, strides, padding }).apply(x) as Sym;
  }

  add(xs: Sym[], name: string): Sym {
    return tf.layers.add({ name }).apply(xs) as Sym;
  }

  concat(xs: Sym[], name: string): Sym {
    return tf.layers.concatenate({ name, axis: -1 }).apply(xs) as Sym;
  }

  model(input: Sym, output: Sym, name: string): tf.LayersModel {
    return tf.model({ inputs: input, outputs: output, name });
  }
}

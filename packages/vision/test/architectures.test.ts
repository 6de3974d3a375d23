// The Keras Applications architectures: parameter counts as in Keras's model summaries, feature shapes,
// layer names, the input-size check and the top-block boundary used for fine-tuning.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ARCHITECTURES,
  describeArchitecture,
  getArchitecture,
  InputSizeError,
} from '../src/architectures/index';

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});

describe('parameter counts equal the Keras summaries (include_top=False)', () => {
  // [name, input size, total, trainable, feature shape, layers]; input sizes are the smallest Keras accepts
  // (the counts do not depend on it), except VGG16 at 150 as in the Keras small-data example.
  const cases: [string, number, number, number, number[], number][] = [
    ['vgg16', 150, 14_714_688, 14_714_688, [4, 4, 512], 19],
    ['vgg19', 32, 20_024_384, 20_024_384, [1, 1, 512], 22],
    ['resnet50', 32, 23_587_712, 23_534_592, [1, 1, 2048], 175],
    ['inception_v3', 75, 21_802_784, 21_768_352, [1, 1, 2048], 311],
    ['xception', 71, 20_861_480, 20_806_952, [3, 3, 2048], 132],
    ['mobilenet_v1_1.0', 32, 3_228_864, 3_206_976, [1, 1, 1024], 87],
    ['mobilenet_v1_0.25', 32, 218_544, 213_072, [1, 1, 256], 87],
    ['mobilenet_v2_1.0', 32, 2_257_984, 2_223_872, [1, 1, 1280], 154],
    ['mobilenet_v2_1.4', 32, 4_363_712, 4_315_776, [1, 1, 1792], 154],
  ];
  it.each(cases)('%s at %i', (name, size, params, trainable, featureShape, layers) => {
    const before = tf.memory().numTensors;
    expect(describeArchitecture(name, size)).toEqual({ params, trainableParams: trainable, featureShape, layers });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gives the feature maps of the ImageNet input sizes', () => {
    const shapes = Object.fromEntries(
      ['vgg16', 'resnet50', 'inception_v3', 'xception', 'mobilenet_v1_0.75', 'mobilenet_v2_0.35'].map((n) => [
        n,
        describeArchitecture(n, ARCHITECTURES[n].defaultInputSize).featureShape,
      ]),
    );
    expect(shapes).toEqual({
      vgg16: [7, 7, 512],
      resnet50: [7, 7, 2048],
      inception_v3: [8, 8, 2048],
      xception: [10, 10, 2048],
      'mobilenet_v1_0.75': [7, 7, 768],
      'mobilenet_v2_0.35': [7, 7, 1280],
    });
  });
});

describe('the registry', () => {
  it('names every architecture and alpha', () => {
    expect(Object.keys(ARCHITECTURES).sort()).toEqual(
      [
        'inception_v3',
        'mobilenet_v1_0.25',
        'mobilenet_v1_0.5',
        'mobilenet_v1_0.75',
        'mobilenet_v1_1.0',
        'mobilenet_v2_0.35',
        'mobilenet_v2_0.5',
        'mobilenet_v2_0.75',
        'mobilenet_v2_1.0',
        'mobilenet_v2_1.3',
        'mobilenet_v2_1.4',
        'resnet50',
        'vgg16',
        'vgg19',
        'xception',
      ].sort(),
    );
    expect(() => getArchitecture('resnet18')).toThrow(/unknown architecture "resnet18"/);
  });

  it('gives the Keras preprocessing and weight file names', () => {
    expect(ARCHITECTURES.vgg16.preprocessing).toBe('caffe');
    expect(ARCHITECTURES.resnet50.preprocessing).toBe('caffe');
    expect(ARCHITECTURES.inception_v3.preprocessing).toBe('tf');
    expect(ARCHITECTURES['mobilenet_v2_1.0'].preprocessing).toBe('tf');
    expect(ARCHITECTURES.vgg16.kerasWeightsFile()).toBe('vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5');
    expect(ARCHITECTURES['mobilenet_v1_0.75'].kerasWeightsFile(160)).toBe('mobilenet_7_5_160_tf_no_top.h5');
    expect(ARCHITECTURES['mobilenet_v2_0.75'].kerasWeightsFile()).toBe(
      'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.75_224_no_top.h5',
    );
    expect(ARCHITECTURES['mobilenet_v2_1.0'].kerasWeightsFile(96)).toBe(
      'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5',
    );
  });

  it.each(Object.keys(ARCHITECTURES))('%s rejects inputs below its minimum and builds at it', (name) => {
    const spec = ARCHITECTURES[name];
    const min = spec.minInputSize;
    expect(() => spec.build(min - 1)).toThrow(InputSizeError);
    expect(() => spec.build(min - 1)).toThrow(new RegExp(`at least ${min} pixels \\(received ${min - 1}\\)`));
    expect(() => spec.build(min + 0.5)).toThrow(InputSizeError);
    const model = spec.build(min, { zeroInit: true });
    try {
      expect(model.inputs[0].shape).toEqual([null, min, min, 3]);
    } finally {
      model.dispose();
    }
  });

  it('has Keras minimum input sizes', () => {
    const mins = Object.fromEntries(
      ['vgg16', 'resnet50', 'inception_v3', 'xception', 'mobilenet_v1_1.0'].map((n) => [
        n,
        ARCHITECTURES[n].minInputSize,
      ]),
    );
    expect(mins).toEqual({ vgg16: 32, resnet50: 32, inception_v3: 75, xception: 71, 'mobilenet_v1_1.0': 32 });
  });

  // The top block starts right after a single boundary layer: every layer from topBlockFirstLayer on takes its
  // inputs from the top block or from the layer just before it, so freezing model.layers[0 .. i-1] freezes
  // exactly the layers below the top block.
  it.each(Object.keys(ARCHITECTURES))('%s: one layer cuts off the top block, which ends at the features', (name) => {
    const spec = ARCHITECTURES[name];
    const model = spec.build(spec.minInputSize, { zeroInit: true });
    try {
      const names = model.layers.map((l) => l.name);
      const first = names.indexOf(spec.topBlockFirstLayer);
      expect(first).toBeGreaterThan(1);
      const boundary = names[first - 1];
      const allowed = new Set([...names.slice(first), boundary]);
      for (const layer of model.layers.slice(first)) {
        for (const node of layer.inboundNodes) {
          for (const inbound of node.inboundLayers) {
            expect(allowed, `${layer.name} <- ${inbound.name}`).toContain(inbound.name);
          }
        }
      }
      expect(names.at(-1)).toBe(spec.featureLayer);
      expect(model.outputs[0]).toBe(model.getLayer(spec.featureLayer).output);
    } finally {
      model.dispose();
    }
  });

  it('puts the InceptionV3 top block at model.layers[249], after mixed8, as the Keras fine-tuning example', () => {
    const model = ARCHITECTURES.inception_v3.build(75, { zeroInit: true });
    try {
      expect(model.layers[248].name).toBe('mixed8');
      expect(model.layers[249].name).toBe(ARCHITECTURES.inception_v3.topBlockFirstLayer);
    } finally {
      model.dispose();
    }
  });
});

describe('layer names follow Keras', () => {
  const layerNames = (name: string) => {
    const m = ARCHITECTURES[name].build(ARCHITECTURES[name].minInputSize, { zeroInit: true });
    const names = m.layers.map((l) => l.name);
    m.dispose();
    return names;
  };

  it('ResNet50', () => {
    const names = layerNames('resnet50');
    expect(names.slice(1, 7)).toEqual(['conv1_pad', 'conv1_conv', 'conv1_bn', 'conv1_relu', 'pool1_pad', 'pool1_pool']);
    expect(names).toContain('conv2_block1_0_conv');
    expect(names).toContain('conv4_block6_out');
    expect(names).not.toContain('conv2_block2_0_conv');
  });

  it('MobileNet v1', () => {
    const names = layerNames('mobilenet_v1_0.5');
    expect(names.slice(1, 5)).toEqual(['conv1_pad', 'conv1', 'conv1_bn', 'conv1_relu']);
    for (let i = 1; i <= 13; i++) {
      for (const suffix of ['', '_bn', '_relu']) {
        expect(names).toContain(`conv_dw_${i}${suffix}`);
        expect(names).toContain(`conv_pw_${i}${suffix}`);
      }
    }
  });

  it('InceptionV3 and Xception with the numbered names of the Keras weight files', () => {
    const inception = layerNames('inception_v3');
    expect(inception.slice(1, 4)).toEqual(['conv2d_1', 'batch_normalization_1', 'activation_1']);
    expect(inception).toContain('conv2d_94');
    expect(inception).not.toContain('conv2d_95');
    expect(inception.filter((n) => /^mixed\d+$/.test(n))).toHaveLength(11);
    const xception = layerNames('xception');
    expect(xception.filter((n) => /^(conv2d|add)_\d+$/.test(n)).sort()).toEqual(
      [...[1, 2, 3, 4].map((i) => `conv2d_${i}`), ...Array.from({ length: 12 }, (_, i) => `add_${i + 1}`)].sort(),
    );
  });
});

describe('the models run', () => {
  // At odd sizes the two MobileNets differ, as in Keras: v1 pads strided convolutions by one pixel at the
  // bottom and right only (33 -> 16 -> ... -> 1), v2 pads like TF 'same' (33 -> 17 -> ... -> 2).
  it.each([
    ['vgg16', 32, [1, 1, 512]],
    ['resnet50', 32, [1, 1, 2048]],
    ['inception_v3', 75, [1, 1, 2048]],
    ['xception', 71, [3, 3, 2048]],
    ['mobilenet_v1_0.25', 33, [1, 1, 256]],
    ['mobilenet_v2_0.35', 33, [2, 2, 1280]],
  ] as const)('%s at %i gives finite features of shape %j', (name, size, shape) => {
    const model = ARCHITECTURES[name].build(size);
    try {
      const before = tf.memory().numTensors;
      const stats = tf.tidy(() => {
        const y = model.predict(tf.randomUniform([2, size, size, 3], -1, 1, 'float32', 1)) as tf.Tensor;
        return { shape: y.shape, finite: y.isFinite().all().dataSync()[0], max: y.abs().max().dataSync()[0] };
      });
      expect(stats.shape).toEqual([2, ...shape]);
      expect(stats.finite).toBe(1);
      expect(stats.max).toBeGreaterThan(0);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
  });
});

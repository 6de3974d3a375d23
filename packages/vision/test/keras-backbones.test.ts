// The Keras Applications architectures in the backbone registry: described without weights, loaded from a
// Keras .h5 weight file (under the names a source may give it) or a TensorFlow.js layers folder, and trained.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import h5wasm from 'h5wasm/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARCHITECTURES } from '../src/architectures/index';
import { initBackend } from '../src/backend';
import { backboneNames, describeBackbone, getBackboneSpec, listBackbones, loadBackbone } from '../src/backbones';
import { resolveConfig } from '@graft/contract';
import { loadLayersModelFromFiles, saveLayersModelToFiles } from '../src/model-files';
import { train } from '../src/train';
import { syntheticSet } from './fixtures';
import { kerasLayers, writeKerasH5 } from './fixtures-h5';

const NAME = 'mobilenet_v1_0.25';
let dir: string;
/** The random weights written to `<dir>/mobilenet_v1_0.25.h5`, by layer name. */
let written: Map<string, Float32Array[]>;

beforeAll(async () => {
  await initBackend();
  await h5wasm.ready;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-keras-backbones-'));
  const source = ARCHITECTURES[NAME]!.build(32);
  calibrateBatchNorm(source);
  writeKerasH5(path.join(dir, `${NAME}.h5`), kerasLayers(source));
  written = new Map(source.layers.map((l) => [l.name, l.getWeights().map((w) => Float32Array.from(w.dataSync()))]));
  source.dispose();
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Sets every batch normalization's moving mean and variance to those of its inputs on random images, layer by
 * layer, so that the random network's activations neither vanish nor explode (a random MobileNet's do).
 */
function calibrateBatchNorm(model: tf.LayersModel): void {
  const x = tf.randomUniform([8, 32, 32, 3], -1, 1, 'float32', 7);
  for (const layer of model.layers.filter((l) => l.getClassName() === 'BatchNormalization')) {
    tf.tidy(() => {
      const upTo = tf.model({ inputs: model.inputs, outputs: layer.input as tf.SymbolicTensor });
      const { mean, variance } = tf.moments(upTo.predict(x) as tf.Tensor, [0, 1, 2]);
      const [gamma, beta] = layer.getWeights();
      layer.setWeights([gamma!, beta!, mean, variance]);
    });
  }
  x.dispose();
}

const weightsOf = (m: tf.LayersModel, layer: string) => m.getLayer(layer).getWeights().map((w) => Float32Array.from(w.dataSync()));

describe('Keras architectures in the backbone registry', () => {
  it('describes VGG16 at 150x150 as the Keras summary does, without weights', async () => {
    const before = tf.memory().numTensors;
    expect(await describeBackbone('vgg16', path.join(dir, 'nothing-here'), 150)).toEqual({
      name: 'vgg16',
      inputSize: 150,
      params: 14_714_688,
      featureShape: [4, 4, 512],
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('registers every architecture with its preprocessing, feature layer and top block', () => {
    expect(backboneNames()).toEqual(expect.arrayContaining(Object.keys(ARCHITECTURES)));
    expect(getBackboneSpec('vgg16')).toMatchObject({ inputSize: 224, featureLayer: 'block5_pool', topBlockStart: 'block5_conv1' });
    expect(getBackboneSpec('vgg16').preprocessing.mode).toBe('caffe');
    expect(getBackboneSpec('inception_v3')).toMatchObject({ inputSize: 299, topBlockStart: 'conv2d_81' });
    expect(getBackboneSpec('mobilenet_v2_1.0').preprocessing.mode).toBe('tf');
  });

  it('loads weights from <source>/<name>.h5, from the Keras file name and from a path to the file', async () => {
    const keras = ARCHITECTURES[NAME]!.kerasWeightsFile(32);
    const nested = path.join(dir, 'nested');
    fs.mkdirSync(path.join(nested, NAME), { recursive: true });
    fs.copyFileSync(path.join(dir, `${NAME}.h5`), path.join(nested, NAME, keras));
    for (const source of [dir, pathToFileURL(dir).href, nested, path.join(nested, NAME, keras)]) {
      const m = await loadBackbone(NAME, source, { inputSize: 32 });
      try {
        expect(m.outputs[0]!.shape).toEqual([null, 1, 1, 256]);
        expect(weightsOf(m, 'conv1')).toEqual(written.get('conv1'));
        expect(weightsOf(m, 'conv_pw_13_bn')).toEqual(written.get('conv_pw_13_bn'));
      } finally {
        m.dispose();
      }
    }
    expect((await listBackbones(dir)).find((b) => b.name === NAME)!.weights.available).toBe(true);
    expect((await listBackbones(dir)).find((b) => b.name === 'vgg16')!.weights.available).toBe(false);
  });

  it('loads a TensorFlow.js layers folder at another input size', async () => {
    const tfjsDir = path.join(dir, 'tfjs');
    fs.mkdirSync(path.join(tfjsDir, NAME), { recursive: true });
    const m = await loadBackbone(NAME, dir, { inputSize: 32 });
    for (const [file, bytes] of Object.entries(await saveLayersModelToFiles(m))) fs.writeFileSync(path.join(tfjsDir, NAME, file), bytes);
    m.dispose();
    const big = await loadBackbone(NAME, tfjsDir, { inputSize: 64 });
    try {
      expect(big.outputs[0]!.shape).toEqual([null, 2, 2, 256]);
      expect(weightsOf(big, 'conv_dw_7')).toEqual(written.get('conv_dw_7'));
    } finally {
      big.dispose();
    }
  });

  it('fails clearly where a source has no weights for it', async () => {
    await expect(loadBackbone('vgg16', dir, { inputSize: 32 })).rejects.toMatchObject({ code: 'BACKBONE_WEIGHTS_UNAVAILABLE', permanent: false });
    const broken = path.join(dir, 'broken.h5');
    fs.writeFileSync(broken, 'not hdf5');
    // A corrupt file fails the same way on every attempt: the job is not retried.
    await expect(loadBackbone(NAME, broken, { inputSize: 32 })).rejects.toMatchObject({ code: 'BACKBONE_WEIGHTS_UNAVAILABLE', permanent: true });
  });

  it('trains a classifier on it (random .h5 weights): fine-tuning changes the top block, the rest keeps its weights', async () => {
    const set = await syntheticSet(['red', 'blue'], { train: 16, validation: 8, test: 8 }, 5);
    const result = await train({
      config: resolveConfig({
        method: 'fine_tuning',
        backbone: NAME,
        inputSize: 32,
        batchSize: 8,
        head: { units: 16, dropout: 0.1 },
        augmentation: { copies: 1, rotationRange: 10, horizontalFlip: true },
        featureExtraction: { epochs: 10, optimizer: 'adam', learningRate: 0.01 },
        fineTuning: { epochs: 2, optimizer: 'adam', learningRate: 0.001 },
        earlyStopping: false,
      }),
      labels: set.labels,
      splits: set.splits,
      readImage: set.readImage,
      backbones: dir,
    });
    expect(result.graft).toMatchObject({ backbone: NAME, inputSize: 32, method: 'fine_tuning' });
    expect(result.graft.preprocessing).toMatchObject({ mode: 'tf' });
    expect(result.history.filter((r) => r.phase === 'fine_tuning')).toHaveLength(2);
    const trained = await loadLayersModelFromFiles(result.artifacts);
    try {
      expect(weightsOf(trained, 'conv1')).toEqual(written.get('conv1'));
      expect(weightsOf(trained, 'conv_pw_12')).toEqual(written.get('conv_pw_12'));
      // batch normalization stays frozen in the top block; its convolutions are trained, and the model keeps them
      // where a fine-tuning epoch validated below the head's best (else it stays as the head left it: the random
      // weights are not seeded, so either can happen)
      expect(weightsOf(trained, 'conv_pw_13_bn')).toEqual(written.get('conv_pw_13_bn'));
      const best = (phase: string) => Math.min(...result.history.filter((r) => r.phase === phase).map((r) => r.valLoss!));
      if (best('fine_tuning') < best('training_head')) expect(weightsOf(trained, 'conv_pw_13')).not.toEqual(written.get('conv_pw_13'));
      else expect(weightsOf(trained, 'conv_pw_13')).toEqual(written.get('conv_pw_13'));
    } finally {
      trained.dispose();
    }
    // The random backbone's features separate the training images: the head's loss falls well below chance.
    const head = result.history.filter((r) => r.phase === 'training_head');
    expect(head.at(-1)!.loss).toBeLessThan(0.4); // chance is ln 2 = 0.69; the random weights are not seeded
    expect(head.at(-1)!.loss).toBeLessThan(head[0]!.loss / 2);
    expect(result.test!.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(16);
  });
});

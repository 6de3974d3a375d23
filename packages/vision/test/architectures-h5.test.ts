// Keras HDF5 weight files: written here with h5wasm in the layout Keras 2 uses (root attribute layer_names,
// a group per layer with a weight_names attribute, datasets `<layer>/<layer>/<weight>:0`), then loaded back.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import h5wasm, { type Group } from 'h5wasm/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARCHITECTURES, loadKerasH5Weights } from '../src/architectures/index';
import { KerasH5Error } from '../src/architectures/h5';
import { kerasLayers, writeKerasH5, writeStrings } from './fixtures-h5';

let dir: string;

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  await h5wasm.ready;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-arch-h5-test-'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function maxWeightDiff(a: tf.LayersModel, b: tf.LayersModel): number {
  const wa = a.getWeights();
  const wb = b.getWeights();
  expect(wa.length).toBe(wb.length);
  return Math.max(...wa.map((w, i) => tf.tidy(() => w.sub(wb[i]).abs().max().dataSync()[0])));
}

describe('loadKerasH5Weights', () => {
  it('loads a MobileNet v1 weight file, by path and from bytes, into a fresh model', async () => {
    const source = ARCHITECTURES['mobilenet_v1_0.25'].build(32);
    const file = path.join(dir, 'mobilenet_2_5.h5');
    writeKerasH5(file, kerasLayers(source));
    for (const input of [file, new Uint8Array(fs.readFileSync(file))]) {
      const target = ARCHITECTURES['mobilenet_v1_0.25'].build(32);
      try {
        expect(maxWeightDiff(source, target)).toBeGreaterThan(0);
        const before = tf.memory().numTensors;
        const result = await loadKerasH5Weights(target, input);
        expect(tf.memory().numTensors).toBe(before);
        // conv1 and conv1_bn, then 13 x (conv_dw, conv_dw_bn, conv_pw, conv_pw_bn)
        expect(result).toEqual({ loaded: 2 + 13 * 4, skipped: [], matchedBy: 'name' });
        expect(maxWeightDiff(source, target)).toBe(0);
        const diff = tf.tidy(() => {
          const x = tf.randomUniform([1, 32, 32, 3], -1, 1, 'float32', 3);
          return (source.predict(x) as tf.Tensor).sub(target.predict(x) as tf.Tensor).abs().max().dataSync()[0];
        });
        expect(diff).toBe(0);
      } finally {
        target.dispose();
      }
    }
    source.dispose();
  });

  it('loads separable convolutions, scale-less batch normalization and dense layers', async () => {
    const build = () => {
      const input = tf.input({ shape: [8, 8, 3] });
      let x = tf.layers.separableConv2d({ name: 'sep', filters: 4, kernelSize: 3, padding: 'same' }).apply(input);
      x = tf.layers.batchNormalization({ name: 'sep_bn', scale: false }).apply(x);
      x = tf.layers.flatten({ name: 'flatten' }).apply(x);
      x = tf.layers.dense({ name: 'dense', units: 2 }).apply(x);
      return tf.model({ inputs: input, outputs: x as tf.SymbolicTensor });
    };
    const source = build();
    tf.tidy(() => {
      const bn = source.getLayer('sep_bn');
      bn.setWeights(bn.getWeights().map((w) => tf.randomUniform(w.shape, 0.5, 1.5)));
    });
    const file = path.join(dir, 'small.h5');
    const layers = kerasLayers(source);
    expect(layers.find((l) => l.name === 'sep')!.weights.map((w) => w.name)).toEqual([
      'sep/depthwise_kernel:0',
      'sep/pointwise_kernel:0',
      'sep/bias:0',
    ]);
    writeKerasH5(file, layers);
    const target = build();
    const result = await loadKerasH5Weights(target, file);
    expect(result.loaded).toBe(3);
    expect(maxWeightDiff(source, target)).toBe(0);
    source.dispose();
    target.dispose();
  });

  it('pairs layers by order when the names differ (Keras load_weights without by_name)', async () => {
    const source = ARCHITECTURES['mobilenet_v2_0.35'].build(32);
    const file = path.join(dir, 'renamed.h5');
    writeKerasH5(file, kerasLayers(source, (n) => `tf2_${n}`));
    const target = ARCHITECTURES['mobilenet_v2_0.35'].build(32);
    try {
      await expect(loadKerasH5Weights(target, file, { match: 'name' })).rejects.toThrow(
        /have no weights in the file: Conv1, bn_Conv1/,
      );
      const result = await loadKerasH5Weights(target, file);
      expect(result.matchedBy).toBe('order');
      expect(result.loaded).toBe(target.layers.filter((l) => l.weights.length > 0).length);
      expect(maxWeightDiff(source, target)).toBe(0);
    } finally {
      source.dispose();
      target.dispose();
    }
  });

  it('reads whole-model files, with chunked layer_names, and skips layers the headless model lacks', async () => {
    const source = ARCHITECTURES['mobilenet_v1_0.25'].build(32);
    const layers = kerasLayers(source);
    layers.push({
      name: 'predictions',
      weights: [
        { name: 'predictions/kernel:0', shape: [256, 3], data: new Float32Array(768).fill(0.5) },
        { name: 'predictions/bias:0', shape: [3], data: new Float32Array(3) },
      ],
    });
    const file = path.join(dir, 'whole.h5');
    writeKerasH5(file, layers, { wholeModel: true, chunkLayerNames: true });
    const target = ARCHITECTURES['mobilenet_v1_0.25'].build(32);
    try {
      const result = await loadKerasH5Weights(target, file);
      expect(result).toEqual({ loaded: 54, skipped: ['predictions'], matchedBy: 'name' });
      expect(maxWeightDiff(source, target)).toBe(0);
    } finally {
      source.dispose();
      target.dispose();
    }
  });

  it('rejects weights of another shape and leaves the model unchanged', async () => {
    const wider = ARCHITECTURES['mobilenet_v1_0.5'].build(32, { zeroInit: true });
    const file = path.join(dir, 'mobilenet_5_0.h5');
    writeKerasH5(file, kerasLayers(wider));
    wider.dispose();
    const target = ARCHITECTURES['mobilenet_v1_0.25'].build(32);
    const kernelBefore = target.getLayer('conv1').getWeights()[0].dataSync().slice();
    try {
      const err = await loadKerasH5Weights(target, file).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KerasH5Error);
      expect((err as Error).message).toMatch(
        /layer "conv1": weight "conv1\/kernel:0" has shape \[3, 3, 3, 16\] in the file but .*\[3, 3, 3, 8\] in the/,
      );
      expect(target.getLayer('conv1').getWeights()[0].dataSync()).toEqual(kernelBefore);
    } finally {
      target.dispose();
    }
  });

  it('rejects a model whose layers the file cannot fill, and files that are not Keras weights', async () => {
    const small = ARCHITECTURES['mobilenet_v1_0.25'].build(32, { zeroInit: true });
    const file = path.join(dir, 'partial.h5');
    writeKerasH5(file, kerasLayers(small).slice(0, 10).map((l) => ({ ...l, name: `x_${l.name}` })));
    await expect(loadKerasH5Weights(small, file)).rejects.toThrow(
      /the file holds weights for 6 layers but the model has 54 layers with weights/,
    );

    const other = path.join(dir, 'other.h5');
    const f = new h5wasm.File(other, 'w');
    f.create_dataset({ name: 'x', data: new Float32Array([1, 2]), shape: [2], dtype: '<f4' });
    f.close();
    await expect(loadKerasH5Weights(small, other)).rejects.toThrow(/no `layer_names` attribute/);

    const ints = path.join(dir, 'ints.h5');
    writeKerasH5(ints, kerasLayers(small));
    const g = new h5wasm.File(ints, 'a');
    const conv1 = g.get('conv1/conv1') as Group;
    const intKernel = new Int32Array(3 * 3 * 3 * 8);
    conv1.create_dataset({ name: 'int_kernel:0', data: intKernel, shape: [3, 3, 3, 8], dtype: '<i4' });
    (g.get('conv1') as Group).delete_attribute('weight_names');
    writeStrings(g.get('conv1') as Group, 'weight_names', ['conv1/int_kernel:0']);
    g.close();
    await expect(loadKerasH5Weights(small, ints)).rejects.toThrow(/weight "conv1\/int_kernel:0" is not a float array/);
    await expect(loadKerasH5Weights(small, new Uint8Array([1, 2, 3]))).rejects.toThrow(/is not an HDF5 file/);
    await expect(loadKerasH5Weights(small, path.join(dir, 'missing.h5'))).rejects.toThrow(/not found/);
    small.dispose();
  });
});

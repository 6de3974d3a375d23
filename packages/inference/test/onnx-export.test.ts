import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { convertToOnnx, decodeModel, exportOnnx, UnsupportedLayerError } from '../src/index';
import { compareWithOrt, loadInTfjs, randomInput, randomizeWeights, saveToMemory, type SavedModel } from './helpers';

const TOLERANCE = 1e-4;

function opCounts(onnx: Uint8Array): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const node of decodeModel(onnx).graph.node) counts[node.op_type] = (counts[node.op_type] ?? 0) + 1;
  return counts;
}

/** Saves `model`, reloads it in TF.js from the saved form, converts the saved form, and compares both on `batch` inputs. */
async function roundTrip(model: tf.LayersModel, batch = 2, opts: Parameters<typeof exportOnnx>[2] = {}) {
  const saved = await saveToMemory(model);
  const reloaded = await loadInTfjs(saved);
  const converted = convertToOnnx(saved.modelJson, saved.weights, opts);
  const inputShape = [batch, ...(model.inputs[0].shape.slice(1) as number[])];
  const input = randomInput(inputShape.reduce((a, b) => a * b, 1), 11);
  const result = await compareWithOrt(reloaded, converted.model, input, inputShape);
  reloaded.dispose();
  return { ...result, saved, converted };
}

beforeAll(async () => {
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
});

describe('exportOnnx on small models (TF.js cpu vs ONNX Runtime)', () => {
  it('converts a Sequential convnet: same/valid padding, stride 2, max pooling, batch norm, flatten, dense, dropout', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [12, 12, 3], filters: 8, kernelSize: 3, padding: 'same', useBias: false }),
        tf.layers.batchNormalization(),
        tf.layers.activation({ activation: 'relu' }),
        // 12 -> 6 with 'same': TensorFlow pads 0 before and 1 after.
        tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.conv2d({ filters: 6, kernelSize: 2, padding: 'valid', activation: 'relu6' }),
        tf.layers.batchNormalization(),
        tf.layers.flatten(),
        tf.layers.dense({ units: 10, activation: 'relu' }),
        tf.layers.dropout({ rate: 0.5 }),
        tf.layers.dense({ units: 3, activation: 'softmax' }),
      ],
    });
    randomizeWeights(model, 1);
    const { maxAbsDiff, converted, tfjs } = await roundTrip(model, 3);
    expect(tfjs).toHaveLength(9);
    expect(maxAbsDiff).toBeLessThan(TOLERANCE);
    expect(converted.inputs).toEqual([{ name: 'input', shape: [null, 12, 12, 3] }]);
    expect(converted.outputs).toEqual([{ name: 'output', shape: [null, 3] }]);
    const ops = opCounts(converted.model);
    // The first batch norm folds into its convolution; the second follows a relu6 and stays a Mul + Add.
    expect(ops.Conv).toBe(3);
    expect(ops.Mul).toBe(1);
    expect(ops.Add).toBe(1);
    expect(ops.Dropout).toBeUndefined();
    model.dispose();
  });

  it('converts depthwise and separable convolutions with zero padding, pooling and leaky relu', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.zeroPadding2d({ inputShape: [11, 11, 4], padding: [[1, 2], [0, 1]] }),
        tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, depthMultiplier: 2, padding: 'valid', activation: 'relu' }),
        tf.layers.batchNormalization(),
        tf.layers.separableConv2d({ filters: 6, kernelSize: 3, padding: 'same', depthMultiplier: 1 }),
        tf.layers.batchNormalization(),
        tf.layers.reLU({ maxValue: 6 }),
        tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', useBias: false }),
        tf.layers.leakyReLU({ alpha: 0.2 }),
        tf.layers.averagePooling2d({ poolSize: 2, strides: 1, padding: 'same' }),
        tf.layers.globalMaxPooling2d({}),
        tf.layers.dense({ units: 4, activation: 'tanh' }),
      ],
    });
    randomizeWeights(model, 2);
    const { maxAbsDiff, converted } = await roundTrip(model);
    expect(maxAbsDiff).toBeLessThan(TOLERANCE);
    expect(opCounts(converted.model).Pad).toBe(1);
    model.dispose();
  });

  it('converts a functional model with Rescaling, Add, Concatenate, Multiply and global average pooling', async () => {
    const input = tf.input({ shape: [10, 10, 3] });
    const scaled = tf.layers.rescaling({ scale: 1 / 2, offset: 0.25 }).apply(input) as tf.SymbolicTensor;
    const a = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(scaled) as tf.SymbolicTensor;
    const b0 = tf.layers.conv2d({ filters: 8, kernelSize: 1 }).apply(scaled) as tf.SymbolicTensor;
    const b = tf.layers.batchNormalization().apply(b0) as tf.SymbolicTensor;
    const sum = tf.layers.add().apply([a, b]) as tf.SymbolicTensor;
    const c = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'sigmoid' }).apply(sum) as tf.SymbolicTensor;
    const d = tf.layers.maxPooling2d({ poolSize: 2 }).apply(sum) as tf.SymbolicTensor;
    const cat = tf.layers.concatenate().apply([c, d]) as tf.SymbolicTensor;
    const gate = tf.layers.conv2d({ filters: 12, kernelSize: 1, activation: 'swish' }).apply(cat) as tf.SymbolicTensor;
    const product = tf.layers.multiply().apply([cat, gate]) as tf.SymbolicTensor;
    const pooled = tf.layers.globalAveragePooling2d({}).apply(product) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 5, activation: 'softmax' }).apply(pooled) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    randomizeWeights(model, 3);
    const { maxAbsDiff, converted } = await roundTrip(model, 2, { opset: 17 });
    expect(maxAbsDiff).toBeLessThan(TOLERANCE);
    expect(decodeModel(converted.model).opset_import[0].version).toBe(17);
    model.dispose();
  });

  it('converts the trainer export: Sequential([functional backbone, GAP, Dense(256, relu), Dropout, Dense(1, sigmoid)])', async () => {
    const input = tf.input({ shape: [16, 16, 3] });
    let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false, name: 'bb_conv1' }).apply(input) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: 'bb_conv1_bn' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.activation({ activation: 'relu6', name: 'bb_conv1_relu' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, name: 'bb_dw' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: 'bb_dw_bn' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.activation({ activation: 'relu6', name: 'bb_dw_relu' }).apply(x) as tf.SymbolicTensor;
    const backbone = tf.model({ inputs: input, outputs: x, name: 'backbone' });
    const model = tf.sequential({
      layers: [
        backbone,
        tf.layers.globalAveragePooling2d({}),
        tf.layers.dense({ units: 256, activation: 'relu' }),
        tf.layers.dropout({ rate: 0.5 }),
        tf.layers.dense({ units: 1, activation: 'sigmoid' }),
      ],
    });
    randomizeWeights(model, 4);
    const { maxAbsDiff, saved, converted } = await roundTrip(model, 3);
    // TF.js saves the backbone as a nested functional config inside the Sequential's layer list.
    const topology = saved.modelJson.modelTopology as { class_name: string; config: { layers: Array<{ class_name: string; config: { name: string } }> } };
    expect(topology.class_name).toBe('Sequential');
    expect(topology.config.layers[0].class_name).toBe('Model');
    expect(topology.config.layers[0].config.name).toBe('backbone');
    expect(maxAbsDiff).toBeLessThan(TOLERANCE);
    expect(converted.outputs[0].shape).toEqual([null, 1]);

    // Cutting inside the nested backbone, or at the backbone itself, gives the backbone's features.
    const features = randomInput(2 * 16 * 16 * 3, 5);
    for (const outputLayer of ['bb_dw_relu', 'backbone']) {
      const headless = convertToOnnx(saved.modelJson, saved.weights, { outputLayer });
      expect(headless.outputs[0].shape).toEqual([null, 8, 8, 8]);
      const cut = await compareWithOrt(backbone, headless.model, features, [2, 16, 16, 3]);
      expect(cut.maxAbsDiff).toBeLessThan(TOLERANCE);
      expect(opCounts(headless.model).Gemm).toBeUndefined();
    }
    model.dispose();
  });

  it('converts a functional model that contains a model, with Reshape and an NHWC Flatten', async () => {
    const innerInput = tf.input({ shape: [6, 6, 2] });
    const innerOut = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'elu' }).apply(innerInput) as tf.SymbolicTensor;
    const inner = tf.model({ inputs: innerInput, outputs: innerOut, name: 'inner' });
    const input = tf.input({ shape: [6, 6, 2] });
    const features = inner.apply(input) as tf.SymbolicTensor;
    const reshaped = tf.layers.reshape({ targetShape: [3, 12, 4] }).apply(features) as tf.SymbolicTensor;
    const conv = tf.layers.conv2d({ filters: 3, kernelSize: 2, activation: 'hardSigmoid' }).apply(reshaped) as tf.SymbolicTensor;
    const flat = tf.layers.flatten().apply(conv) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 2 }).apply(flat) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    randomizeWeights(model, 5);
    const { maxAbsDiff } = await roundTrip(model);
    expect(maxAbsDiff).toBeLessThan(TOLERANCE);
    model.dispose();
  });

  it('keeps a rank-4 output in NHWC order', async () => {
    const model = tf.sequential({
      layers: [tf.layers.conv2d({ inputShape: [5, 7, 2], filters: 3, kernelSize: 3, strides: 2, padding: 'same' })],
    });
    randomizeWeights(model, 6);
    const { maxAbsDiff, converted, ort } = await roundTrip(model);
    expect(converted.outputs[0].shape).toEqual([null, 3, 4, 3]);
    expect(ort).toHaveLength(2 * 3 * 4 * 3);
    expect(maxAbsDiff).toBeLessThan(TOLERANCE);
    model.dispose();
  });
});

describe('exportOnnx errors', () => {
  async function saved(layers: tf.layers.Layer[]): Promise<SavedModel> {
    const model = tf.sequential({ layers });
    const s = await saveToMemory(model);
    model.dispose();
    return s;
  }

  it('throws UnsupportedLayerError naming the layer class and name', async () => {
    const s = await saved([
      tf.layers.conv2d({ inputShape: [4, 4, 1], filters: 2, kernelSize: 1 }),
      tf.layers.upSampling2d({ size: [2, 2], name: 'grow' }),
    ]);
    let error: unknown;
    try {
      exportOnnx(s.modelJson, s.weights);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UnsupportedLayerError);
    expect((error as UnsupportedLayerError).layerClass).toBe('UpSampling2D');
    expect((error as UnsupportedLayerError).layerName).toBe('grow');
    expect((error as Error).message).toContain('UpSampling2D');
  });

  it('does not convert layers after the cut, so a cut before an unsupported layer works', async () => {
    const s = await saved([
      tf.layers.conv2d({ inputShape: [4, 4, 1], filters: 2, kernelSize: 1, name: 'keep' }),
      tf.layers.upSampling2d({ size: [2, 2] }),
    ]);
    expect(convertToOnnx(s.modelJson, s.weights, { outputLayer: 'keep' }).outputs[0].shape).toEqual([null, 4, 4, 2]);
  });

  it('rejects an unknown output layer, short weight data and an unsupported opset', async () => {
    const s = await saved([tf.layers.dense({ inputShape: [3], units: 2 })]);
    expect(() => exportOnnx(s.modelJson, s.weights, { outputLayer: 'nope' })).toThrow(/"nope" not found/);
    expect(() => exportOnnx(s.modelJson, s.weights.subarray(0, 8))).toThrow(/too short/);
    expect(() => exportOnnx(s.modelJson, s.weights, { opset: 9 })).toThrow(RangeError);
  });
});

// The shared pretrained backbones, converted and compared with TF.js (wasm backend) on the same inputs.
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertToOnnx, decodeModel } from '../src/index';
import { compareWithOrt, loadInTfjs, loadModelDir, MODELS_DIR, randomInput, saveToMemory, useWasmBackend, type SavedModel } from './helpers';

const BATCH = 2;
const SHAPE = [BATCH, 224, 224, 3];
const SIZE = BATCH * 224 * 224 * 3;

describe('exportOnnx on the shared pretrained models', () => {
  let mobilenet: SavedModel;
  let mobilenetTf: tf.LayersModel;

  beforeAll(async () => {
    await useWasmBackend();
    mobilenet = await loadModelDir(join(MODELS_DIR, 'mobilenet_v1_0.25_224'));
    mobilenetTf = await loadInTfjs(mobilenet);
  });

  afterAll(() => mobilenetTf?.dispose());

  it('converts mobilenet_v1_0.25_224 with its classifier, batch norms folded into the convolutions', async () => {
    const converted = convertToOnnx(mobilenet.modelJson, mobilenet.weights);
    expect(converted.outputs).toEqual([{ name: 'output', shape: [null, 1000] }]);
    const ops = decodeModel(converted.model).graph.node.map((n) => n.op_type);
    expect(ops.filter((op) => op === 'Conv')).toHaveLength(28);
    expect(ops).not.toContain('Mul');
    const { maxAbsDiff, ort } = await compareWithOrt(mobilenetTf, converted.model, randomInput(SIZE, 21), SHAPE);
    expect(maxAbsDiff).toBeLessThan(1e-4);
    // Softmax rows sum to one.
    expect(ort.slice(0, 1000).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
  });

  it('converts the headless mobilenet cut at conv_pw_13_relu', async () => {
    const converted = convertToOnnx(mobilenet.modelJson, mobilenet.weights, { outputLayer: 'conv_pw_13_relu' });
    expect(converted.outputs).toEqual([{ name: 'output', shape: [null, 7, 7, 256] }]);
    const headless = tf.model({ inputs: mobilenetTf.inputs, outputs: mobilenetTf.getLayer('conv_pw_13_relu').output as tf.SymbolicTensor });
    const { maxAbsDiff, tfjs, ort } = await compareWithOrt(headless, converted.model, randomInput(SIZE, 4), SHAPE);
    // Raw relu6 features reach 6 after 27 convolutions; float32 rounding alone makes TF.js's own cpu and wasm
    // backends disagree by about 1e-4 here, so the bound is 1e-4 of the feature range.
    const range = tfjs.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(range).toBeGreaterThan(1);
    expect(maxAbsDiff).toBeLessThan(1e-4 * range);
    let sum = 0;
    for (let i = 0; i < ort.length; i++) sum += Math.abs(ort[i] - tfjs[i]);
    expect(sum / ort.length).toBeLessThan(1e-5);
  });

  it('converts darknettiny (LeakyReLU, MaxPool, inputs in [0, 1])', async () => {
    const darknet = await loadModelDir(join(MODELS_DIR, 'darknettiny'));
    const darknetTf = await loadInTfjs(darknet);
    const converted = convertToOnnx(darknet.modelJson, darknet.weights);
    expect(converted.outputs[0].shape).toEqual([null, 1000]);
    const { maxAbsDiff } = await compareWithOrt(darknetTf, converted.model, randomInput(SIZE, 9, 0, 1), SHAPE);
    expect(maxAbsDiff).toBeLessThan(1e-4);
    darknetTf.dispose();
  });

  it('converts a trainer-style Sequential around the headless mobilenet', async () => {
    const backbone = tf.model({
      inputs: mobilenetTf.inputs,
      outputs: mobilenetTf.getLayer('conv_pw_13_relu').output as tf.SymbolicTensor,
      name: 'mobilenet_headless',
    });
    const head = [
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 256, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.dropout({ rate: 0.5 }),
      tf.layers.dense({ units: 1, activation: 'sigmoid', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ];
    const model = tf.sequential({ layers: [backbone, ...head] });
    const saved = await saveToMemory(model);
    const converted = convertToOnnx(saved.modelJson, saved.weights);
    expect(converted.outputs[0].shape).toEqual([null, 1]);
    const { maxAbsDiff } = await compareWithOrt(model, converted.model, randomInput(SIZE, 33), SHAPE);
    expect(maxAbsDiff).toBeLessThan(1e-4);
    for (const layer of head) layer.dispose();
  });
});

import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSession, exportOnnx, isOnnxRuntimeAvailable } from '../src/index';
import { randomInput, randomizeWeights, saveToMemory } from './helpers';

let onnx: Uint8Array;

beforeAll(async () => {
  await tf.setBackend('cpu');
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [6, 6, 3], filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 2, activation: 'softmax' }),
    ],
  });
  randomizeWeights(model, 7);
  const saved = await saveToMemory(model);
  onnx = exportOnnx(saved.modelJson, saved.weights);
  model.dispose();
});

describe('createSession', () => {
  it('reports ONNX Runtime as available', async () => {
    expect(await isOnnxRuntimeAvailable()).toBe(true);
  });

  it('exposes the model shapes and the provider it picked', async () => {
    const session = await createSession(onnx);
    expect(session.inputShape).toEqual([6, 6, 3]);
    expect(session.outputShape).toEqual([2]);
    expect(['cpu', 'cuda']).toContain(session.executionProvider);
    await session.dispose();
  });

  it('runs a batch and gives each sample the result it gets alone', async () => {
    const session = await createSession(onnx, { threads: Math.min(2, availableParallelism()) });
    const sample = 6 * 6 * 3;
    const input = randomInput(3 * sample, 3);
    const batched = await session.run(input, 3);
    expect(batched).toBeInstanceOf(Float32Array);
    expect(batched).toHaveLength(6);
    for (let i = 0; i < 3; i++) {
      const alone = await session.run(input.slice(i * sample, (i + 1) * sample), 1);
      expect(alone[0]).toBeCloseTo(batched[2 * i], 6);
      expect(alone[0] + alone[1]).toBeCloseTo(1, 5);
    }
    await session.dispose();
  });

  it('rejects inputs that do not match the batch, and runs after dispose', async () => {
    const session = await createSession(onnx, { threads: 1, executionProvider: 'cpu' });
    await expect(session.run(new Float32Array(10), 1)).rejects.toThrow(/needs 108/);
    await expect(session.run(new Float32Array(108), 0)).rejects.toThrow(RangeError);
    await session.dispose();
    await session.dispose();
    await expect(session.run(new Float32Array(108), 1)).rejects.toThrow(/disposed/);
  });

  it('rejects bytes that are not an ONNX model', async () => {
    await expect(createSession(new Uint8Array([1, 2, 3, 4]))).rejects.toThrow();
  });
});

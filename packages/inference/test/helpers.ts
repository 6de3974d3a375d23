// Shared by the inference tests: loading TF.js models from disk or from memory, and comparing TF.js with ONNX Runtime.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { createSession } from '../src/session';
import type { TfjsModelJson, WeightsManifestGroup } from '../src/index';
import { randomInput } from '../../../test/support/random';

export const MODELS_DIR = join(import.meta.dirname, '../../../../shared/models');

export interface SavedModel {
  modelJson: TfjsModelJson & { weightsManifest: WeightsManifestGroup[] };
  weights: Uint8Array;
}

let backendReady: Promise<void> | undefined;

/** Selects the TF.js wasm backend once per test file. */
export function useWasmBackend(): Promise<void> {
  backendReady ??= (async () => {
    tf.env().set('IS_TEST', true);
    await tf.setBackend('wasm');
    await tf.ready();
  })();
  return backendReady;
}

/** Reads a model directory (model.json + shards) the way a browser would fetch it: shards concatenated in manifest order. */
export async function loadModelDir(dir: string): Promise<SavedModel> {
  const modelJson = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as SavedModel['modelJson'];
  const shards = await Promise.all(modelJson.weightsManifest.flatMap((g) => g.paths).map((p) => readFile(join(dir, p))));
  return { modelJson, weights: new Uint8Array(Buffer.concat(shards)) };
}

/** Saves a TF.js model through a save handler into model.json form plus one weight buffer. */
export async function saveToMemory(model: tf.LayersModel): Promise<SavedModel> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const a = artifacts!;
  const data = a.weightData!;
  const weights = new Uint8Array(Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data);
  return {
    modelJson: { modelTopology: a.modelTopology as object, weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs! }] },
    weights,
  };
}

/** Loads a saved model into TF.js from memory. */
export function loadInTfjs(saved: SavedModel): Promise<tf.LayersModel> {
  const buffer = saved.weights.buffer.slice(saved.weights.byteOffset, saved.weights.byteOffset + saved.weights.byteLength);
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: saved.modelJson.modelTopology as object,
      weightSpecs: saved.modelJson.weightsManifest.flatMap((g) => g.weights) as tf.io.WeightsManifestEntry[],
      weightData: buffer as ArrayBuffer,
    }),
  );
}

export { randomInput };

/** Runs `model` in TF.js on an NHWC batch and returns the flattened predictions. */
export async function predictTfjs(model: tf.LayersModel, input: Float32Array, shape: number[]): Promise<Float32Array> {
  const y = tf.tidy(() => model.predict(tf.tensor(input, shape)) as tf.Tensor);
  const data = (await y.data()) as Float32Array;
  y.dispose();
  return data;
}

/** Largest absolute difference between TF.js and ONNX Runtime on the same input. */
export async function compareWithOrt(
  model: tf.LayersModel,
  onnx: Uint8Array,
  input: Float32Array,
  shape: number[],
): Promise<{ maxAbsDiff: number; tfjs: Float32Array; ort: Float32Array }> {
  const expected = await predictTfjs(model, input, shape);
  const session = await createSession(onnx, { threads: 1 });
  try {
    const actual = await session.run(input, shape[0]);
    if (actual.length !== expected.length) throw new Error(`ORT gave ${actual.length} values, TF.js ${expected.length}`);
    let maxAbsDiff = 0;
    for (let i = 0; i < actual.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(actual[i] - expected[i]));
    return { maxAbsDiff, tfjs: expected, ort: actual };
  } finally {
    await session.dispose();
  }
}

/** Replaces every weight of `model` with deterministic values (moving variances positive), so no layer is an identity. */
export function randomizeWeights(model: tf.LayersModel, seed: number): void {
  const values = model.weights.map((w, i) => {
    const size = w.shape.reduce<number>((a, b) => a * (b ?? 1), 1);
    const variance = w.originalName.endsWith('moving_variance');
    const data = variance ? randomInput(size, seed * 1000 + i, 0.5, 1.5) : randomInput(size, seed * 1000 + i, -0.5, 0.5);
    return tf.tensor(data, w.shape as number[]);
  });
  model.setWeights(values);
  tf.dispose(values);
}

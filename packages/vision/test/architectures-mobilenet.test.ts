// MobileNet v1 built here takes the weights of Google's TensorFlow.js MobileNet layers models (../shared/models)
// layer by layer and computes the same conv_pw_13_relu features.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { ARCHITECTURES } from '../src/architectures/index';

const MODELS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../shared/models');

/** Reads a layers model (model.json plus weight shards) from a folder. */
function fileHandler(dir: string): tf.io.IOHandler {
  return {
    async load() {
      const json = JSON.parse(await fs.promises.readFile(path.join(dir, 'model.json'), 'utf8'));
      const weightSpecs: tf.io.WeightsManifestEntry[] = [];
      const shards: Buffer[] = [];
      for (const group of json.weightsManifest as tf.io.WeightsManifestConfig) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) shards.push(await fs.promises.readFile(path.join(dir, p)));
      }
      const all = Buffer.concat(shards);
      const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
      return { modelTopology: json.modelTopology, weightSpecs, weightData };
    },
  };
}

const countParams = (ws: tf.LayerVariable[]) =>
  ws.reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});

describe.each([
  ['mobilenet_v1_0.75', 'mobilenet_v1_0.75_224', 768],
  ['mobilenet_v1_0.25', 'mobilenet_v1_0.25_224', 256],
])('%s takes the weights of %s', (name, folder, channels) => {
  it('layer by layer, and gives the same conv_pw_13_relu features', async () => {
    const reference = await tf.loadLayersModel(fileHandler(path.join(MODELS, folder)));
    const featureLayer = reference.getLayer('conv_pw_13_relu');
    const referenceBase = tf.model({ inputs: reference.inputs, outputs: featureLayer.output });
    const model = ARCHITECTURES[name].build(224);
    try {
      expect(model.outputs[0].shape).toEqual([null, 7, 7, channels]);
      expect(countParams(model.weights)).toBe(countParams(referenceBase.weights));

      const withWeights = model.layers.filter((l) => l.weights.length > 0);
      expect(withWeights.map((l) => l.name)).toEqual(
        referenceBase.layers.filter((l) => l.weights.length > 0).map((l) => l.name),
      );
      for (const layer of withWeights) {
        const weights = reference.getLayer(layer.name).getWeights();
        layer.setWeights(weights);
      }

      const before = tf.memory().numTensors;
      const { maxDiff, maxAbs } = tf.tidy(() => {
        const x = tf.randomUniform([2, 224, 224, 3], -1, 1, 'float32', 7);
        const ours = model.predict(x) as tf.Tensor;
        const theirs = referenceBase.predict(x) as tf.Tensor;
        return {
          maxDiff: ours.sub(theirs).abs().max().dataSync()[0],
          maxAbs: theirs.abs().max().dataSync()[0],
        };
      });
      expect(tf.memory().numTensors).toBe(before);
      expect(maxAbs).toBeGreaterThan(0.1);
      expect(maxDiff).toBeLessThan(1e-4);
    } finally {
      model.dispose();
      reference.dispose();
    }
  });
});

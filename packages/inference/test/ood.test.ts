// Out-of-distribution scores: the nearest-neighbour distance, the threshold, and serving them in the same pass
// as the class probabilities (ONNX Runtime, the features appended to the graph's output); test-time flips.
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportClassifier, initBackend, loadClassifier, makeManifest, PREPROCESSING } from '@graft/vision';
import { mirrored } from '../src/classifier';
import { decodeAll, normalizeInto, pixelTransform } from '../src/image';
import { normalizeRows, oodScore, scoreFromDots, thresholdFor, withOodOutput, type OodManifest } from '../src/ood';
import { Predictor, type ModelSource } from '../src/predictor';
import { randomizeWeights } from './helpers';

const SIZE = 20;

function buildModel(classes: number): tf.LayersModel {
  const input = tf.input({ shape: [SIZE, SIZE, 3], name: 'in' });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'c1' }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'graft_head_pool' }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({ units: classes === 2 ? 1 : classes, activation: classes === 2 ? 'sigmoid' : 'softmax', name: 'graft_head_predictions' })
    .apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'graft_classifier' });
  randomizeWeights(model, 7);
  return model;
}

async function images(n: number, seed: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const w = 24 + i;
    const px = Buffer.alloc(w * w * 3);
    for (let k = 0; k < px.length; k++) px[k] = (k * (i + seed) * 7 + ((k / 3) | 0) * (i + 1) * 3 + seed * 17) & 0xff;
    out.push(await sharp(px, { raw: { width: w, height: w, channels: 3 } }).png().toBuffer());
  }
  return out;
}

/** Unit features at graft_head_pool of images, computed by TF.js. */
async function poolFeatures(model: tf.LayersModel, imgs: Uint8Array[]): Promise<Float32Array> {
  const pixels = await decodeAll(imgs, SIZE, 'lanczos3');
  const t = pixelTransform(PREPROCESSING.tf);
  const per = SIZE * SIZE * 3;
  const buf = new Float32Array(pixels.length * per);
  pixels.forEach((p, i) => normalizeInto(p, t, buf, i * per));
  const sub = tf.model({ inputs: model.inputs, outputs: model.getLayer('graft_head_pool').output as tf.SymbolicTensor });
  const out = tf.tidy(() => sub.predict(tf.tensor4d(buf, [pixels.length, SIZE, SIZE, 3])) as tf.Tensor);
  const data = (await out.data()) as Float32Array;
  out.dispose();
  return normalizeRows(data.slice(), 8);
}

function source(files: Record<string, Uint8Array>): ModelSource {
  return {
    list: async () => Object.entries(files).map(([name, b]) => ({ name, bytes: b.byteLength })),
    read: async (name) => files[name] ?? Promise.reject(new Error(`no ${name}`)),
  };
}

let known: Uint8Array[];
let unknown: Uint8Array[];
let files: Record<string, Uint8Array>;
const predictors: Predictor[] = [];
const predictor = (engine: 'onnx' | 'tfjs' = 'onnx') => {
  const p = new Predictor({ engine, cacheBytes: 1 << 26, threads: 1, loadTfjs: (f) => loadClassifier(f) });
  predictors.push(p);
  return p;
};

beforeAll(async () => {
  await initBackend();
  known = await images(4, 1);
  unknown = await images(4, 9);
  const model = buildModel(3);
  const bank = await poolFeatures(model, known);
  const ood: OodManifest = { method: 'knn', neighbours: 1, featureLayer: 'graft_head_pool', featureSize: 8, bankFile: 'ood-features.bin', bankSize: 4, threshold: 1e-3 };
  const manifest = makeManifest({
    labels: ['a', 'b', 'c'],
    inputSize: SIZE,
    backbone: null,
    method: 'scratch',
    preprocessing: PREPROCESSING.tf,
    outputActivation: 'softmax',
    outOfDistribution: ood,
  });
  files = await exportClassifier(model, manifest);
  files['ood-features.bin'] = new Uint8Array(bank.buffer);
  model.dispose();
});
afterAll(async () => {
  await Promise.all(predictors.map((p) => p.close()));
});

describe('oodScore and thresholdFor', () => {
  it('average the distances to the nearest unit vectors, and flag the top share', () => {
    const bank = normalizeRows(Float32Array.of(1, 0, 0, 1, -1, 0), 2);
    expect(oodScore(bank, 2, [1, 0], 1)).toBeCloseTo(0, 6);
    expect(oodScore(bank, 2, [1, 0], 2)).toBeCloseTo(Math.SQRT2 / 2, 6);
    expect(oodScore(bank, 2, [1, 0], 1, 0)).toBeCloseTo(Math.SQRT2, 6);
    expect(oodScore(bank, 2, [1, 0], 10)).toBeCloseTo((0 + Math.SQRT2 + 2) / 3, 6);
    const scores = Array.from({ length: 100 }, (_, i) => i);
    const t = thresholdFor(scores, 0.05);
    expect(scores.filter((s) => s > t)).toHaveLength(5);
  });

  it('scoreFromDots gives the score oodScore gives from the vectors', () => {
    const bank = normalizeRows(Float32Array.from({ length: 40 }, (_, i) => Math.sin(i * 1.7)), 4);
    const v = Float32Array.of(0.3, -1.2, 2, 0.5);
    const norm = Math.hypot(...v);
    const dots = Array.from({ length: 10 }, (_, r) => bank.subarray(r * 4, r * 4 + 4).reduce((s, b, j) => s + b * v[j]!, 0));
    expect(scoreFromDots(dots, norm, 3)).toBeCloseTo(oodScore(bank, 4, normalizeRows(v.slice(), 4), 3), 6);
  });

  it('withOodOutput refuses a layer the model does not have and leaves the original alone', async () => {
    const json = JSON.parse(Buffer.from(files['model.json']!).toString('utf8'));
    const ood = { featureLayer: 'graft_head_pool', featureSize: 8, bankSize: 4 };
    const bank = new Float32Array(32);
    expect(() => withOodOutput(json, files['weights.bin']!, { ...ood, featureLayer: 'nope' }, bank)).toThrow(/nope/);
    expect(() => withOodOutput(json, files['weights.bin']!, ood, new Float32Array(5))).toThrow(/bank/);
    const out = withOodOutput(json, files['weights.bin']!, ood, bank);
    expect(out.modelJson.modelTopology.config.output_layers).toEqual([['graft_ood_output', 0, 0]]);
    expect(out.weights.byteLength).toBe(files['weights.bin']!.byteLength + 32 * 4);
    expect(json.modelTopology.config.output_layers[0][0]).toBe('graft_head_predictions');
  });
});

describe('Predictor with an out-of-distribution bank', () => {
  it('scores the bank images near 0 and others above, with the probabilities unchanged', async () => {
    const p = predictor();
    const r = await p.predict('ood', source(files), [...known, ...unknown], 3);
    expect(r.timing.engine).toBe('onnxruntime');
    const scores = r.outOfDistribution!.map((o) => o.score);
    for (const s of scores.slice(0, 4)) expect(s).toBeLessThan(1e-3);
    for (const s of scores.slice(4)) expect(s).toBeGreaterThan(1e-3);
    expect(r.outOfDistribution!.map((o) => o.flagged)).toEqual([false, false, false, false, true, true, true, true]);
    const c = await loadClassifier(files);
    const expected = await c.probabilities([...known, ...unknown]);
    c.dispose();
    r.probabilities.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(expected[i]![j]!, 4)));

    const lenient = await p.predict('ood', source(files), unknown, 1, { oodThreshold: 2 });
    expect(lenient.outOfDistribution!.every((o) => !o.flagged)).toBe(true);
    expect(lenient.outOfDistribution!.map((o) => o.score)).toEqual(scores.slice(4));
  });

  it('gives no scores where the engine gives no features (TF.js)', async () => {
    const r = await predictor('tfjs').predict('ood-tfjs', source(files), known, 1);
    expect(r.outOfDistribution).toBeNull();
  });

  it('tta flip averages each image with its mirror image, on both engines', async () => {
    for (const engine of ['onnx', 'tfjs'] as const) {
      const p = predictor(engine);
      const plain = await p.predict(`flip-${engine}`, source(files), unknown, 3);
      const flipped = await Promise.all(
        (await decodeAll(unknown, SIZE, 'lanczos3')).map((px) => sharp(Buffer.from(mirrored(px, SIZE)), { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toBuffer()),
      );
      const mirror = await p.predict(`flip-${engine}`, source(files), flipped, 3);
      const tta = await p.predict(`flip-${engine}`, source(files), unknown, 3, { flip: true });
      tta.probabilities.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo((plain.probabilities[i]![j]! + mirror.probabilities[i]![j]!) / 2, 3)));
      expect(Math.max(...tta.probabilities.map((row, i) => Math.abs(row[0]! - plain.probabilities[i]![0]!)))).toBeGreaterThan(1e-4);
    }
  });
});

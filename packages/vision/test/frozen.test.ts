// Frozen forward passes: ONNX Runtime (in a worker thread) gives the features TensorFlow.js gives, for a whole
// backbone and for the parts fine-tuning splits it into; unsupported models fall back to TensorFlow.js and say
// why.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosineSimilarity } from '@graft/inference/similarity';
import { initBackend } from '../src/backend';
import { loadBackbone } from '../src/backbones';
import { prepareFineTuning } from '../src/fine-tune';
import { pixelTransform } from '@graft/inference/image';
import { createFrozenModel, type FrozenModel } from '../src/frozen';
import { decodeImages, normalizePixels, PREPROCESSING } from '../src/preprocess';
import { createTinyBackboneSource, TINY_BACKBONE } from './fixtures';

const MODELS = resolve(import.meta.dirname, '../../../../shared/models');
const IMAGES = resolve(import.meta.dirname, '../../../../shared/datasets/dogs-vs-cats/validation/dogs');
const haveModels = existsSync(`${MODELS}/mobilenet_v1_0.25_224/model.json`) && existsSync(IMAGES);

let tiny: { source: string; cleanup(): void };
beforeAll(async () => {
  await initBackend();
  tiny = await createTinyBackboneSource();
});
afterAll(() => tiny?.cleanup());

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

function randomInput(n: number, size: number, seed: number): Float32Array {
  return tf.tidy(() => tf.randomUniform([n, size, size, 3], -1, 1, 'float32', seed).dataSync() as Float32Array);
}

type Logged = { obj: Record<string, unknown>; msg: string }[];
const logger = (into: Logged) => (obj: object, msg: string) => void into.push({ obj: obj as Record<string, unknown>, msg });

describe('frozen models on ONNX Runtime', () => {
  it('give the features TensorFlow.js gives (max abs difference under 1e-4), from a worker thread', async () => {
    const m = await loadBackbone(TINY_BACKBONE, tiny.source);
    const logged: Logged = [];
    const ort = await createFrozenModel(m, { log: logger(logged) });
    const ref = await createFrozenModel(m, { engine: 'tfjs' });
    try {
      expect(ort).toMatchObject({ engine: 'onnxruntime', threaded: true, inputShape: [32, 32, 3], outputShapes: [[8, 8, 16]] });
      expect(logged.find((l) => l.obj.engine === 'onnxruntime')).toBeDefined();
      const x = randomInput(5, 32, 1);
      const [want] = await ref.run(x, 5);
      const [got] = await ort.run(x, 5);
      expect(maxAbsDiff(got!, want!)).toBeLessThan(1e-4);
      expect(Math.max(...want!)).toBeGreaterThan(0.1);
      // Runs asked for together come back in order, each with its own result; a transferred input is handed over.
      const inputs = [1, 2, 3].map((s) => randomInput(3, 32, 10 + s));
      const expected = await Promise.all(inputs.map((x) => ref.run(x, 3)));
      const together = await Promise.all(inputs.map((x) => ort.run(x.slice(), 3, { transfer: true })));
      together.forEach((r, i) => expect(maxAbsDiff(r[0]!, expected[i]![0]!)).toBeLessThan(1e-4));
      const handedOver = randomInput(1, 32, 4);
      await ort.run(handedOver, 1, { transfer: true });
      expect(handedOver.length).toBe(0);
    } finally {
      await ort.dispose();
      await ort.dispose();
      await ref.dispose();
      m.dispose();
    }
    await expect(ort.run(randomInput(1, 32, 5), 1)).rejects.toThrow(/disposed/);
  });

  it('run the part below the fine-tuned block and the block itself as the whole backbone does', async () => {
    const m = await loadBackbone(TINY_BACKBONE, tiny.source);
    const parts = prepareFineTuning(m, 'tiny_top_conv');
    const frozen: FrozenModel[] = [];
    try {
      const lower = await createFrozenModel(parts.lower);
      const upper = await createFrozenModel(parts.upper);
      const whole = await createFrozenModel(m, { engine: 'tfjs' });
      frozen.push(lower, upper, whole);
      expect([lower.engine, upper.engine]).toEqual(['onnxruntime', 'onnxruntime']);
      const x = randomInput(4, 32, 2);
      const [mid] = await lower.run(x, 4);
      const [out] = await upper.run(mid!, 4);
      const [want] = await whole.run(x, 4);
      expect(maxAbsDiff(out!, want!)).toBeLessThan(1e-4);
    } finally {
      await Promise.all(frozen.map((f) => f.dispose()));
      m.dispose();
    }
  });

  it('in int8: calibrate on the first inputs, then run int8 close to fp32; stay fp32, saying why, where int8 is too far', async () => {
    const m = await loadBackbone(TINY_BACKBONE, tiny.source);
    const ref = await createFrozenModel(m, { engine: 'tfjs' });
    for (const minCosine of [0.9, 1.5]) {
      const logged: Logged = [];
      const q = (await createFrozenModel(m, { log: logger(logged), precision: 'int8', int8: { calibrationSamples: 8, minCosine } })) as FrozenModel & { precision: string };
      try {
        expect(q.precision).toBe('fp32');
        // Three runs asked at once: the first two make the 8 samples calibrated on, the third is not kept.
        await Promise.all([0, 1, 2].map((b) => q.run(randomInput(4, 32, 20 + b), 4)));
        const x = randomInput(6, 32, 30);
        const [want] = await ref.run(x, 6);
        const [got] = await q.run(x, 6);
        if (minCosine < 1) {
          expect(q.precision).toBe('int8');
          expect(logged).toContainEqual(expect.objectContaining({ obj: expect.objectContaining({ precision: 'int8', samples: 8 }) }));
          expect(maxAbsDiff(got!, want!)).toBeGreaterThan(1e-4);
          expect(cosineSimilarity(got!, want!)).toBeGreaterThan(0.9);
          // The last convolution runs as an integer kernel too: its outputs are 8-bit values, one scale for all.
          expect(new Set(got!).size).toBeLessThanOrEqual(256);
          expect(new Set(want!).size).toBeGreaterThan(256);
          // Asked for fp32, the int8 model runs that batch on its fp32 original.
          const [exact] = await q.run(x, 6, { fp32: true });
          expect(maxAbsDiff(exact!, want!)).toBeLessThan(1e-4);
          expect(q.precision).toBe('int8');
        } else {
          expect(q.precision).toBe('fp32');
          expect(logged).toContainEqual(expect.objectContaining({ msg: expect.stringMatching(/stays fp32: int8 outputs are too far/) }));
          expect(maxAbsDiff(got!, want!)).toBeLessThan(1e-4);
        }
      } finally {
        await q.dispose();
      }
    }
    await ref.dispose();
    m.dispose();
  });

  it('given pixels: fp32 normalises them in its worker thread; int8, quantized on their grid, reads them as the values they stand for', async () => {
    const m = await loadBackbone(TINY_BACKBONE, tiny.source);
    const ref = await createFrozenModel(m, { engine: 'tfjs' });
    const tf = PREPROCESSING.tf;
    const logged: Logged = [];
    const q = (await createFrozenModel(m, { log: logger(logged), precision: 'int8', int8: { calibrationSamples: 8, minCosine: 0.9 }, pixels: pixelTransform(tf) })) as FrozenModel & {
      precision: string;
    };
    const pixels = (n: number, seed: number) => Uint8Array.from({ length: n * 32 * 32 * 3 }, (_, i) => (i * 73 + seed * 131 + ((i * i) % 29)) & 0xff);
    try {
      expect([q.pixels, ref.pixels]).toEqual([true, false]);
      // fp32 (calibrating): the pixels normalised give what their values give TensorFlow.js.
      const first = pixels(4, 1);
      const [want] = await ref.run(normalizePixels(first, tf), 4);
      const [got] = await q.run(first.slice(), 4);
      expect(maxAbsDiff(got!, want!)).toBeLessThan(1e-4);
      await q.run(pixels(4, 2), 4);
      const x = pixels(6, 3);
      const [fromPixels] = await q.run(x.slice(), 6);
      expect(q.precision, JSON.stringify(logged.at(-1))).toBe('int8');
      const [fromValues] = await q.run(normalizePixels(x, tf), 6);
      expect(Array.from(fromPixels!)).toEqual(Array.from(fromValues!));
      const [fp32] = await ref.run(normalizePixels(x, tf), 6);
      expect(maxAbsDiff(fromPixels!, fp32!)).toBeGreaterThan(1e-4);
      expect(cosineSimilarity(fromPixels!, fp32!)).toBeGreaterThan(0.9);
      await expect(ref.run(x, 6)).rejects.toThrow(/takes no pixels/);
    } finally {
      await q.dispose();
      await ref.dispose();
      m.dispose();
    }
  });

  it('fall back to TensorFlow.js, saying why, for a layer the converter cannot express or several outputs', async () => {
    const input = tf.input({ shape: [8, 8, 3] });
    const up = tf.layers.upSampling2d({ size: [2, 2], name: 'grow' }).apply(input) as tf.SymbolicTensor;
    const conv = tf.layers.conv2d({ filters: 2, kernelSize: 3, name: 'conv' }).apply(up) as tf.SymbolicTensor;
    const unsupported = tf.model({ inputs: input, outputs: conv });
    const twoOutputs = tf.model({ inputs: input, outputs: [up, conv] });
    const logged: Logged = [];
    const a = await createFrozenModel(unsupported, { log: logger(logged), what: 'upsampler' });
    const b = await createFrozenModel(twoOutputs, { log: logger(logged), what: 'two outputs' });
    try {
      expect(a.engine).toBe('tfjs');
      expect(b.engine).toBe('tfjs');
      const reasons = logged.filter((l) => l.obj.engine === 'tfjs').map((l) => String(l.obj.reason));
      expect(reasons[0]).toMatch(/UpSampling2D.*grow/);
      expect(reasons[1]).toMatch(/2 outputs/);
      const x = randomInput(2, 8, 3);
      const [y] = await a.run(x, 2);
      const want = tf.tidy(() => (unsupported.predict(tf.tensor4d(x, [2, 8, 8, 3])) as tf.Tensor).dataSync() as Float32Array);
      expect(maxAbsDiff(y!, want)).toBe(0);
      const both = await b.run(x, 2);
      expect(both.map((o) => o.length)).toEqual([2 * 16 * 16 * 3, 2 * 14 * 14 * 2]);
    } finally {
      unsupported.dispose();
    }
    await expect(createFrozenModel(unsupported, { engine: 'onnxruntime' })).rejects.toMatchObject({ code: 'ONNX_RUNTIME_UNAVAILABLE' });
  });

  it.skipIf(!haveModels)('give the pretrained MobileNet features of real photos to within 1e-4 of their range', async () => {
    const m = await loadBackbone('mobilenet_v1_0.25_224', MODELS);
    const files = readdirSync(IMAGES).sort().slice(0, 4);
    const images = (await decodeImages(files.length, async (i) => new Uint8Array(readFileSync(`${IMAGES}/${files[i]}`)), 224, { kernel: 'lanczos3' })) as Uint8Array[];
    const per = 224 * 224 * 3;
    const x = new Float32Array(files.length * per);
    images.forEach((img, i) => normalizePixels(img, PREPROCESSING.tf, x.subarray(i * per, (i + 1) * per)));
    const ort = await createFrozenModel(m);
    const ref = await createFrozenModel(m, { engine: 'tfjs' });
    try {
      expect(ort.engine).toBe('onnxruntime');
      const [want] = await ref.run(x, files.length);
      const [got] = await ort.run(x, files.length);
      const range = Math.max(...want!.map(Math.abs));
      expect(range).toBeGreaterThan(1);
      // Float32 sums over thousands of terms in another order: the features (up to 6) agree to a few 1e-4.
      expect(maxAbsDiff(got!, want!) / range).toBeLessThan(1e-4);
    } finally {
      await ort.dispose();
      m.dispose();
    }
  });
});

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { backboneNames, describeBackbone, getBackboneSpec, listBackbones, loadBackbone } from '../src/backbones';
import { loadClassifier } from '../src/classifier';
import { exportClassifier, makeManifest } from '../src/export';
import { prepareFineTuning } from '../src/fine-tune';
import { Head } from '../src/head';
import { preprocessImage, PREPROCESSING } from '../src/preprocess';
import { COLORS, createTinyBackboneSource, squareImage, TINY_BACKBONE } from './fixtures';

const MODELS = resolve(import.meta.dirname, '../../../../shared/models');
const haveModels = existsSync(`${MODELS}/mobilenet_v1_0.25_224/model.json`);

let tiny: { source: string; cleanup(): void };
beforeAll(async () => {
  await initBackend();
  tiny = await createTinyBackboneSource();
});
afterAll(() => tiny?.cleanup());

describe('backbone registry', () => {
  it('knows the pretrained backbones and rejects unknown names', () => {
    expect(backboneNames()).toEqual(expect.arrayContaining(['mobilenet_v1_0.75_224', 'mobilenet_v1_0.25_224', 'darknettiny']));
    expect(getBackboneSpec('mobilenet_v1_0.75_224')).toMatchObject({ inputSize: 224, featureLayer: 'conv_pw_13_relu', topBlockStart: 'conv_dw_13' });
    expect(() => getBackboneSpec('nope')).toThrow(expect.objectContaining({ code: 'BACKBONE_NOT_FOUND' }));
  });

  it('loads a headless model from a folder and frees the classification layers', async () => {
    const before = tf.memory().numTensors;
    const m = await loadBackbone(TINY_BACKBONE, tiny.source);
    expect(m.outputs[0]!.shape).toEqual([null, 8, 8, 16]);
    expect(m.layers.map((l) => l.name)).not.toContain('tiny_logits');
    // kernel + bias per conv (3 convs: 6), 4 per batch norm (2: 8)
    expect(tf.memory().numTensors - before).toBe(14);
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('loads from a file:// URL and at another input size', async () => {
    const m = await loadBackbone(TINY_BACKBONE, pathToFileURL(tiny.source).href, { inputSize: 64 });
    expect(m.outputs[0]!.shape).toEqual([null, 16, 16, 16]);
    m.dispose();
  });

  it('loads through a reader function, for sources only the caller can read', async () => {
    const { readFile } = await import('node:fs/promises');
    const asked: string[] = [];
    const reader = async (p: string) => {
      asked.push(p);
      return new Uint8Array(await readFile(`${tiny.source}/${p}`));
    };
    const m = await loadBackbone(TINY_BACKBONE, reader);
    expect(asked).toEqual([`${TINY_BACKBONE}/model.json`, `${TINY_BACKBONE}/weights.bin`]);
    expect(m.outputs[0]!.shape).toEqual([null, 8, 8, 16]);
    m.dispose();
    const list = await listBackbones(reader);
    expect(list.find((b) => b.name === TINY_BACKBONE)!.weights.available).toBe(true);
    expect(list.find((b) => b.name === 'darknettiny')!.weights.available).toBe(false);
  });

  it('lists where weights are available', async () => {
    const list = await listBackbones(tiny.source);
    expect(list.find((b) => b.name === TINY_BACKBONE)!.weights.available).toBe(true);
    expect(list.find((b) => b.name === 'darknettiny')!.weights.available).toBe(false);
  });

  it('fails clearly where the weights are missing', async () => {
    await expect(loadBackbone('darknettiny', tiny.source)).rejects.toMatchObject({ code: 'BACKBONE_WEIGHTS_UNAVAILABLE' });
  });

  it('splits before the top block into a frozen part and a block that computes the same features', async () => {
    const m = await loadBackbone(TINY_BACKBONE, tiny.source);
    const parts = prepareFineTuning(m, 'tiny_top_conv');
    expect(parts.upper.layers.map((l) => l.name)).toEqual(['tiny_top_conv_in0', 'tiny_top_conv', 'tiny_top_bn', 'tiny_features']);
    // batch normalization is not trained
    expect(parts.blockWeights.map((w) => w.originalName)).toEqual(['tiny_top_conv/kernel', 'tiny_top_conv/bias']);
    const x = tf.randomUniform([2, 32, 32, 3], -1, 1);
    const direct = m.predict(x) as tf.Tensor;
    const viaSplit = parts.upper.predict(parts.lower.predict(x) as tf.Tensor) as tf.Tensor;
    expect(tf.max(tf.abs(tf.sub(direct, viaSplit))).dataSync()[0]).toBeLessThan(1e-5);
    tf.dispose([x, direct, viaSplit]);
    expect(() => prepareFineTuning(m, 'no_such_layer')).toThrow(expect.objectContaining({ code: 'LAYER_NOT_FOUND' }));
    m.dispose();
  });
});

describe.skipIf(!haveModels)('pretrained backbones from shared/models', () => {
  it('mobilenet_v1_0.25_224: features 7x7x256, top block from conv_dw_13, ImageNet prediction still right', async () => {
    const m = await loadBackbone('mobilenet_v1_0.25_224', MODELS);
    expect(m.outputs[0]!.shape).toEqual([null, 7, 7, 256]);
    const parts = prepareFineTuning(m, getBackboneSpec('mobilenet_v1_0.25_224').topBlockStart);
    expect(parts.lower.outputs.map((t) => t.shape)).toEqual([[null, 7, 7, 256]]);
    expect(parts.blockWeights.map((w) => w.originalName)).toEqual(['conv_dw_13/depthwise_kernel', 'conv_pw_13/kernel']);
    m.dispose();
  });

  it('darknettiny: headless at leaky_re_lu_15, 14x14x128', async () => {
    const m = await loadBackbone('darknettiny', MODELS);
    expect(m.outputs[0]!.shape).toEqual([null, 14, 14, 128]);
    m.dispose();
  });

  it('describes parameters and feature shape at another input size without loading weights', async () => {
    const d = await describeBackbone('mobilenet_v1_0.75_224', MODELS, 160);
    expect(d.featureShape).toEqual([5, 5, 768]);
    expect(d.params).toBeGreaterThan(1_800_000);
    expect(d.params).toBeLessThan(2_000_000);
  });

  it('a classifier on mobilenet_v1_0.25_224 exports to files and loads back with the same predictions', async () => {
    const base = await loadBackbone('mobilenet_v1_0.25_224', MODELS);
    const head = new Head((base.outputs[0]!.shape as number[]).slice(1), 3, { pooling: 'avg', units: 8, dropout: 0.5 }, 1);
    const model = tf.model({ inputs: base.inputs, outputs: head.applySymbolic(base.outputs[0]!) });
    const images = [await squareImage(COLORS.red!, 1), await squareImage(COLORS.blue!, 2, 'jpeg')];
    const pixels = await Promise.all(images.map((b) => preprocessImage(b, 224, PREPROCESSING.tf)));
    const x = tf.tensor4d(Float32Array.from(pixels.flatMap((p) => Array.from(p))), [2, 224, 224, 3]);
    const inMemory = (model.predict(x) as tf.Tensor).arraySync() as number[][];
    const manifest = makeManifest({ labels: ['a', 'b', 'c'], inputSize: 224, backbone: 'mobilenet_v1_0.25_224', method: 'feature_extraction', preprocessing: PREPROCESSING.tf, outputActivation: 'softmax' });
    const files = await exportClassifier(model, manifest);
    tf.dispose(x);
    head.dispose();
    base.dispose();
    const clf = await loadClassifier(async (name) => files[name]!);
    const loaded = await clf.probabilities(images);
    clf.dispose();
    loaded.forEach((p, i) => p.forEach((v, k) => expect(v).toBeCloseTo(inMemory[i]![k]!, 5)));
  });

  it('lists the shared models as available', async () => {
    const list = await listBackbones(MODELS);
    for (const name of ['mobilenet_v1_0.75_224', 'mobilenet_v1_0.25_224', 'darknettiny']) {
      expect(list.find((b) => b.name === name)!.weights.available).toBe(true);
    }
  });
});

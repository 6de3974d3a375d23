// Test fixtures: small synthetic image sets made with sharp, and a tiny random backbone saved as a layers model
// in a temporary folder and registered like the pretrained ones.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { registerBackbone } from '../src/backbones';
import { saveLayersModelToFiles } from '../src/model-files';
import { PREPROCESSING } from '../src/preprocess';
import { createRng } from '../src/random';
import type { ImageRef } from '../src/split';
import type { CheckpointStore } from '../src/checkpoint';

export const TINY_BACKBONE = 'tiny_test_backbone';
export const TINY_SIZE = 32;

/**
 * A functional convnet with a classification top, as the pretrained models are: conv (stride 2) + BN + conv
 * (stride 2) + a 1x1 top block ending in the feature layer `tiny_features` (8x8x16 at 32), then global pooling
 * and a 10-class layer that the headless model leaves out.
 */
export function buildTinyBackbone(seed = 1): tf.LayersModel {
  const init = (k: number) => tf.initializers.heNormal({ seed: seed * 10 + k });
  const input = tf.input({ shape: [TINY_SIZE, TINY_SIZE, 3], name: 'tiny_input' });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', name: 'tiny_conv1', kernelInitializer: init(1) }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'tiny_bn1' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu', name: 'tiny_relu1' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 16, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'tiny_conv2', kernelInitializer: init(2) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 16, kernelSize: 1, name: 'tiny_top_conv', kernelInitializer: init(3) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'tiny_top_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu', name: 'tiny_features' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'tiny_pool' }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 10, activation: 'softmax', name: 'tiny_logits' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'tiny' });
}

/** Saves the tiny backbone as `<dir>/<name>/model.json` + weights and registers it; returns the source folder. */
export async function createTinyBackboneSource(): Promise<{ source: string; cleanup(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'graft-backbones-'));
  const model = buildTinyBackbone();
  const files = await saveLayersModelToFiles(model);
  model.dispose();
  mkdirSync(join(dir, TINY_BACKBONE));
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, TINY_BACKBONE, name), data);
  registerBackbone({
    name: TINY_BACKBONE,
    inputSize: TINY_SIZE,
    minInputSize: 16,
    preprocessing: PREPROCESSING.tf,
    featureLayer: 'tiny_features',
    topBlockStart: 'tiny_top_conv',
  });
  return { source: dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const COLORS: Record<string, [number, number, number]> = {
  red: [220, 30, 30],
  green: [30, 200, 40],
  blue: [30, 40, 220],
};

/**
 * An image of a coloured square on a grey noisy background, at a random place and size, as PNG or JPEG bytes,
 * at a size other than the model's so resizing is exercised.
 */
export async function squareImage(color: [number, number, number], seed: number, format: 'png' | 'jpeg' = 'png'): Promise<Uint8Array> {
  const rng = createRng(seed);
  const w = 48;
  const h = 40;
  const raw = Buffer.alloc(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const g = 100 + Math.floor(rng() * 60);
    raw[i * 3] = g;
    raw[i * 3 + 1] = g;
    raw[i * 3 + 2] = g;
  }
  const side = 28 + Math.floor(rng() * 10);
  const x0 = Math.floor(rng() * (w - side));
  const y0 = Math.floor(rng() * (h - side));
  for (let y = y0; y < y0 + side; y++) {
    for (let x = x0; x < x0 + side; x++) {
      raw.set(color.map((c) => Math.max(0, Math.min(255, c + Math.floor((rng() - 0.5) * 40)))), (y * w + x) * 3);
    }
  }
  const img = sharp(raw, { raw: { width: w, height: h, channels: 3 } });
  return new Uint8Array(format === 'png' ? await img.png().toBuffer() : await img.jpeg().toBuffer());
}

export interface SyntheticSet {
  labels: string[];
  images: Map<string, Uint8Array>;
  splits: { train: ImageRef[]; validation: ImageRef[]; test: ImageRef[] };
  readImage(key: string): Promise<Uint8Array>;
}

/** perClass images of each named colour per split. */
export async function syntheticSet(labels: string[], perClass: { train: number; validation: number; test: number }, seed = 1): Promise<SyntheticSet> {
  const images = new Map<string, Uint8Array>();
  const splits = { train: [] as ImageRef[], validation: [] as ImageRef[], test: [] as ImageRef[] };
  let s = seed * 1000;
  for (const split of ['train', 'validation', 'test'] as const) {
    for (let label = 0; label < labels.length; label++) {
      for (let i = 0; i < perClass[split]; i++) {
        const key = `${split}/${labels[label]}/${i}.png`;
        images.set(key, await squareImage(COLORS[labels[label]!]!, s++, i % 2 ? 'jpeg' : 'png'));
        splits[split].push({ key, label });
      }
    }
  }
  return {
    labels,
    images,
    splits,
    readImage: async (key) => {
      const b = images.get(key);
      if (!b) throw new Error(`no image ${key}`);
      return b;
    },
  };
}

/** A checkpoint store in memory, and its files. */
export function memoryCheckpointStore(): { store: CheckpointStore; files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  return {
    files,
    store: {
      read: async (name) => files.get(name) ?? null,
      write: async (name, bytes) => void files.set(name, Uint8Array.from(bytes)),
      removeFolder: async (folder) => {
        for (const k of [...files.keys()]) if (k.startsWith(folder)) files.delete(k);
      },
    },
  };
}

// Grad-CAM on a classifier whose evidence is known: one feature channel sees red, the other blue, and each class
// is the evidence of one channel, so on an image red on the left and blue on the right each class's map must lie
// over its own half.
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend';
import { exportClassifier, makeManifest } from '../src/export';
import { loadExplainer } from '../src/explain';
import { PREPROCESSING } from '../src/preprocess';

const SIZE = 16;

async function files(): Promise<Record<string, Uint8Array>> {
  const input = tf.input({ shape: [SIZE, SIZE, 3] });
  const conv = tf.layers.conv2d({ filters: 2, kernelSize: 1, activation: 'relu', name: 'c1' });
  let x = conv.apply(input) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'graft_head_pool' }).apply(x) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: 2, activation: 'softmax', name: 'graft_head_predictions' });
  const model = tf.model({ inputs: input, outputs: dense.apply(x) as tf.SymbolicTensor });
  // Channel 0: red, channel 1: blue (inputs in [-1, 1]).
  conv.setWeights([tf.tensor4d([1, 0, 0, 0, 0, 1], [1, 1, 3, 2]), tf.zeros([2])]);
  dense.setWeights([tf.tensor2d([4, -4, -4, 4], [2, 2]), tf.zeros([2])]);
  const manifest = makeManifest({
    labels: ['red', 'blue'],
    inputSize: SIZE,
    backbone: null,
    method: 'scratch',
    preprocessing: PREPROCESSING.tf,
    outputActivation: 'softmax',
  });
  const out = await exportClassifier(model, manifest);
  model.dispose();
  return out;
}

/** An image, red on the left `share` of its width and blue on the rest. */
async function halves(width: number, height: number, share = 0.5): Promise<Uint8Array> {
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) px.set(x < width * share ? [255, 0, 0] : [0, 0, 255], (y * width + x) * 3);
  }
  return new Uint8Array(await sharp(px, { raw: { width, height, channels: 3 } }).png().toBuffer());
}

/** Share of a heatmap's mass in its left half. */
function leftShare(h: { width: number; height: number; values: number[] }): number {
  let left = 0;
  let all = 0;
  h.values.forEach((v, i) => {
    all += v;
    if (i % h.width < h.width / 2) left += v;
  });
  return left / all;
}

let model: Record<string, Uint8Array>;
beforeAll(async () => {
  await initBackend();
  model = await files();
});

describe('Grad-CAM', () => {
  it("puts each class's map over its own half, in [0, 1], with a PNG overlay", async () => {
    const logged: { obj: Record<string, unknown>; msg: string }[] = [];
    const ex = await loadExplainer(model, { log: (obj, msg) => void logged.push({ obj: obj as Record<string, unknown>, msg }) });
    try {
      // The forward pass to the feature map runs on ONNX Runtime.
      expect(logged).toContainEqual(expect.objectContaining({ obj: expect.objectContaining({ model: 'feature map to explain', engine: 'onnxruntime' }) }));
      const image = await halves(64, 48);
      const red = await ex.explain(image, 'red');
      const blue = await ex.explain(image, 'blue');
      expect(red.heatmap).toMatchObject({ width: SIZE, height: SIZE });
      expect(red.heatmap.values).toHaveLength(SIZE * SIZE);
      for (const e of [red, blue]) expect(e.heatmap.values.every((v) => v >= 0 && v <= 1)).toBe(true);
      expect(Math.max(...red.heatmap.values)).toBe(1);
      expect(leftShare(red.heatmap)).toBeGreaterThan(0.9);
      expect(leftShare(blue.heatmap)).toBeLessThan(0.1);
      expect(red.probability + blue.probability).toBeCloseTo(1, 5);

      expect(red.overlay).toMatch(/^data:image\/png;base64,/);
      const meta = await sharp(Buffer.from(red.overlay.split(',')[1]!, 'base64')).metadata();
      expect(meta).toMatchObject({ format: 'png', width: 64, height: 48 });
    } finally {
      ex.dispose();
    }
  });

  it('explains the top class by default, and refuses an unknown label or an undecodable image', async () => {
    const ex = await loadExplainer(model);
    try {
      const mostlyBlue = await ex.explain(await halves(32, 32, 0.25));
      expect(mostlyBlue.label).toBe('blue');
      expect(mostlyBlue.probability).toBeGreaterThan(0.5);
      await expect(ex.explain(await halves(32, 32), 'green')).rejects.toThrow(/green/);
      await expect(ex.explain(new Uint8Array([1, 2, 3]))).rejects.toMatchObject({ index: 0 });
    } finally {
      ex.dispose();
    }
  });

  it('leaves no tensors behind', async () => {
    const ex = await loadExplainer(model);
    const image = await halves(32, 32);
    await ex.explain(image);
    const before = tf.memory().numTensors;
    await ex.explain(image, 'red');
    await ex.explain(image, 'blue');
    expect(tf.memory().numTensors).toBe(before);
    ex.dispose();
  });
});

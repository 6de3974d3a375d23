// Augmentation as TensorFlow.js ops (src/augment-tensor.ts) against augment.ts's applyTransform and
// normalizePixels, image by image: every fill mode and interpolation, on the cpu backend, and on webgpu where a
// WebGPU adapter exists.
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { applyTransform, sampleTransform, type AffineTransform, type FillMode, type Interpolation } from '../src/augment';
import { normalizeBatch, transformBatch } from '../src/augment-tensor';
import { normalizePixels, PREPROCESSING } from '../src/preprocess';
import { createRng } from '../src/random';
import { extractFeatures, FeatureStore, type ExtractItem, type NetworkInput } from '../src/features';
import { startWebGpuForTest } from './webgpu';

const H = 13;
const W = 17;
const B = 5;

/** Smooth images with an edge, so that every resampling difference shows. */
function images(): Float32Array {
  const out = new Float32Array(B * H * W * 3);
  for (let i = 0; i < out.length; i++) {
    const px = Math.floor(i / 3);
    const x = px % W;
    const y = Math.floor(px / W) % H;
    out[i] = (37 * x + 53 * y + 91 * (i % 3) + 17 * Math.floor(px / (W * H)) + (x > 9 ? 60 : 0)) % 256;
  }
  return out;
}

const OPTIONS = {
  rotationRange: 40,
  widthShiftRange: 0.2,
  heightShiftRange: 0.2,
  shearRange: 20,
  zoomRange: 0.3,
  horizontalFlip: true,
  verticalFlip: true,
};

function transforms(seed: number): (AffineTransform | null)[] {
  const rng = createRng(seed);
  return Array.from({ length: B }, (_, i) => (i === 2 ? null : sampleTransform(OPTIONS, H, W, rng)));
}

/** The largest difference between the ops and applyTransform per image; and the share of values off by > 1. */
async function compare(backend: string, mode: FillMode, interpolation: Interpolation, seed: number) {
  await tf.setBackend(backend);
  const src = images();
  const ts = transforms(seed);
  const out = tf.tidy(() => transformBatch(tf.tensor4d(src, [B, H, W, 3]), ts, { fillMode: mode, cval: 7, interpolation }));
  const got = (await out.data()) as Float32Array;
  out.dispose();
  const per = H * W * 3;
  let max = 0;
  let off = 0;
  ts.forEach((t, i) => {
    const img = src.subarray(i * per, (i + 1) * per);
    const want = t ? applyTransform(img, H, W, 3, t, { fillMode: mode, cval: 7, interpolation }) : img;
    for (let k = 0; k < per; k++) {
      const d = Math.abs(got[i * per + k]! - want[k]!);
      max = Math.max(max, d);
      if (d > 1) off++;
    }
  });
  return { max, offShare: off / (B * per) };
}

const webgpuUnavailable = await startWebGpuForTest();
const backends = ['cpu', ...(webgpuUnavailable ? [] : ['webgpu'])];

describe.each(backends)('augmentation as ops on %s', (backend) => {
  for (const mode of ['nearest', 'constant', 'reflect', 'wrap'] as const) {
    it(`matches applyTransform, bilinear, fill mode ${mode}`, async () => {
      const r = await compare(backend, mode, 'bilinear', 11);
      expect(r.max).toBeLessThan(0.02);
    });
    it(`matches applyTransform, nearest neighbour, fill mode ${mode}`, async () => {
      // Float32 coordinates may round a point lying within ~1e-5 of a half-pixel the other way.
      const r = await compare(backend, mode, 'nearest', 12);
      expect(r.offShare).toBeLessThan(0.002);
    });
  }

  it('normalises as normalizePixels does, RGB and BGR', async () => {
    await tf.setBackend(backend);
    const src = images();
    for (const p of [PREPROCESSING.tf, PREPROCESSING.caffe, PREPROCESSING.torch]) {
      const t = normalizeBatch(tf.tensor4d(src, [B, H, W, 3]), p);
      const got = (await t.data()) as Float32Array;
      t.dispose();
      const want = normalizePixels(src, p);
      let max = 0;
      for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got[i]! - want[i]!));
      expect(max, p.mode).toBeLessThan(1e-4);
    }
  });
});

describe('feature extraction with augmentation on the backend', () => {
  it('hands the frozen model the same inputs as augmentation on this thread', async () => {
    await tf.setBackend('cpu');
    const size = 12;
    const per = size * size * 3;
    const pixels = images();
    const decoded = Array.from({ length: 3 }, (_, i) => new Uint8Array(pixels.subarray(i * per, (i + 1) * per)));
    const items: ExtractItem[] = decoded.flatMap((_, i) => [0, 1, 2].map((copy) => ({ image: i, copy, label: i % 2 })));
    const run = async (augmentOnBackend: boolean) => {
      const store = new FeatureStore([[size, size, 3]], 'binary', 2, 4, 1);
      const seen: string[] = [];
      await extractFeatures({
        images: decoded,
        items,
        size,
        preprocessing: PREPROCESSING.caffe,
        augmentation: { ...OPTIONS, fillMode: 'reflect' },
        seed: 5,
        batchSize: 4,
        stores: [store],
        augmentOnBackend,
        forward: async (input: NetworkInput) => {
          seen.push(input instanceof tf.Tensor ? 'tensor' : 'array');
          if (input instanceof Float32Array) return [input.slice()];
          if (!(input instanceof tf.Tensor)) throw new Error('pixels were not asked for');
          const values = (await input.data()) as Float32Array;
          input.dispose();
          return [values];
        },
      });
      return { values: Array.from({ length: store.count }, (_, i) => store.sample(i)), seen };
    };
    const before = tf.memory().numTensors;
    const here = await run(false);
    const there = await run(true);
    expect(tf.memory().numTensors).toBe(before);
    expect([...new Set(here.seen)]).toEqual(['array']);
    expect([...new Set(there.seen)]).toEqual(['tensor']);
    expect(there.values).toHaveLength(items.length);
    let max = 0;
    here.values.forEach((v, i) => v.forEach((x, k) => (max = Math.max(max, Math.abs(x - there.values[i]![k]!)))));
    expect(max).toBeLessThan(1e-3);
    // The copies are augmented: they differ from the image itself.
    expect(here.values[1]).not.toEqual(here.values[0]);
  });
});

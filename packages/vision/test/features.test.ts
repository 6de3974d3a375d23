// Feature extraction's batch inputs (src/features.ts extractFeatures): the frozen model gives each one back once it
// has read it (FrozenRunOptions.giveBack), and extraction fills it again for a later batch instead of allocating one.
import { describe, expect, it } from 'vitest';
import { extractFeatures, FeatureStore, type ArrayForward, type ExtractItem } from '../src/features';
import { pixelByte } from '@graft/inference/affine';
import { PREPROCESSING, type Preprocessing } from '../src/preprocess';

const SIZE = 6;
const PER = SIZE * SIZE * 3;

function decoded(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => Uint8Array.from({ length: PER }, (_, k) => (i * 41 + k * 7) & 0xff));
}

/**
 * Extracts each of 13 images and an augmented copy of each in batches of 4 (7 batches): the stored features, the
 * buffers forward saw and each item's input as forward saw it. `pixels`: items go as 8-bit pixels.
 */
async function extract(giveBack: boolean, o: { pixels?: boolean; preprocessing?: Preprocessing } = {}) {
  const images = decoded(13);
  const items: ExtractItem[] = images.flatMap((_, i) => [0, 1].map((copy) => ({ image: i, copy, label: i % 2 })));
  const store = new FeatureStore([[2]], 'binary', 2, 4, 1);
  const buffers = new Set<ArrayBufferLike>();
  const inputs: number[][] = [];
  // A frozen model that reads its input later (as a worker thread does): per sample, the sum and the first value.
  const forward: ArrayForward = async (input, n, opts) => {
    if (!(o.pixels ? input instanceof Uint8Array : input instanceof Float32Array)) throw new Error(`expected ${o.pixels ? 'pixels' : 'values'}`);
    const given = input as Float32Array | Uint8Array;
    buffers.add(given.buffer);
    for (let s = 0; s < n; s++) inputs.push(Array.from(given.subarray(s * PER, (s + 1) * PER)));
    await new Promise((r) => setImmediate(r));
    const out = new Float32Array(n * 2);
    for (let s = 0; s < n; s++) {
      const x = Array.from(given.subarray(s * PER, (s + 1) * PER));
      out[s * 2] = x.reduce((a, b) => a + b, 0);
      out[s * 2 + 1] = x[0]!;
    }
    // Whatever the caller does with its buffer from now on must not change what was computed.
    if (giveBack) opts?.giveBack?.(given);
    return [out];
  };
  await extractFeatures({
    images,
    items,
    size: SIZE,
    preprocessing: o.preprocessing ?? PREPROCESSING.tf,
    augmentation: { rotationRange: 30, zoomRange: 0.2, horizontalFlip: true, fillMode: 'nearest' },
    seed: 3,
    batchSize: 4,
    stores: [store],
    forward,
    pixels: o.pixels,
  });
  return { features: Array.from({ length: store.count }, (_, i) => Array.from(store.sample(i))), buffers: buffers.size, count: store.count, inputs, images, items };
}

describe('extractFeatures', () => {
  it('fills the batch inputs forward gives back again, with the features of fresh ones', async () => {
    const fresh = await extract(false);
    const reused = await extract(true);
    expect(fresh.count).toBe(26);
    expect(fresh.buffers).toBe(7); // a new input for each of the 7 batches
    // At most one being filled while two are in flight.
    expect(reused.buffers).toBeLessThanOrEqual(3);
    expect(reused.features).toEqual(fresh.features);
    // The copies are augmented (so each batch's values differ and a stale input would show).
    expect(fresh.features[1]).not.toEqual(fresh.features[0]);
  });

  it('sends pixels where forward takes them: each image as it is, each augmented copy rounded to the nearest pixel value', async () => {
    // Values left as the augmentation resampled them (a normalisation that changes nothing), and the same as pixels.
    const values = await extract(true, { preprocessing: { ...PREPROCESSING.tf, mean: [0, 0, 0], std: [1, 1, 1] } });
    const pixels = await extract(true, { pixels: true });
    expect(pixels.inputs).toHaveLength(26);
    pixels.items.forEach((it, i) => {
      if (it.copy === 0) expect(pixels.inputs[i]).toEqual(Array.from(pixels.images[it.image]!));
      expect(pixels.inputs[i]).toEqual(values.inputs[i]!.map(pixelByte));
    });
    // The copies are resampled between pixels: rounding them changed some values.
    expect(values.inputs[1]!.some((v) => !Number.isInteger(v))).toBe(true);
    expect(pixels.buffers).toBeLessThanOrEqual(3);
  });
});

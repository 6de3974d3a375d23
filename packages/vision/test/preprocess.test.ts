import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { ImageDecodeError } from '../src/errors';
import { decodeImage, decodeImages, decodeInOrder, normalizePixels, PREPROCESSING } from '../src/preprocess';
import { carveSplits, type ImageRef } from '../src/split';

/** A w x h image whose left half is red and right half blue. */
async function halves(w: number, h: number): Promise<Buffer> {
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set(x < w / 2 ? [255, 0, 0] : [0, 0, 255], (y * w + x) * 3);
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

const px = (img: Uint8Array, size: number, r: number, c: number) => Array.from(img.subarray((r * size + c) * 3, (r * size + c) * 3 + 3));

describe('decodeImage', () => {
  it('stretches to size x size without keeping the aspect ratio', async () => {
    const img = await decodeImage(await halves(40, 10), 8, 'lanczos3');
    expect(img.length).toBe(8 * 8 * 3);
    // the halves stay halves: nothing cropped, nothing padded
    expect(px(img, 8, 0, 0)).toEqual([255, 0, 0]);
    expect(px(img, 8, 7, 2)).toEqual([255, 0, 0]);
    expect(px(img, 8, 0, 7)).toEqual([0, 0, 255]);
    expect(px(img, 8, 7, 5)).toEqual([0, 0, 255]);
  });

  it('applies the EXIF orientation', async () => {
    // Orientation 6: the stored image is shown turned 90 degrees clockwise, so its left half ends up on top.
    const jpeg = await sharp(await halves(16, 16)).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
    const img = await decodeImage(jpeg, 16, 'lanczos3');
    const [r, , b] = px(img, 16, 1, 8);
    expect(r).toBeGreaterThan(200);
    expect(b).toBeLessThan(60);
    const [r2, , b2] = px(img, 16, 14, 8);
    expect(b2).toBeGreaterThan(200);
    expect(r2).toBeLessThan(60);
  });

  it('turns grayscale and RGBA images into 3-channel RGB', async () => {
    const gray = await sharp(Buffer.alloc(4 * 4, 77), { raw: { width: 4, height: 4, channels: 1 } }).png().toBuffer();
    expect(px(await decodeImage(gray, 4, 'lanczos3'), 4, 1, 1)).toEqual([77, 77, 77]);
    const rgba = await sharp(Buffer.alloc(4 * 4 * 4, 200), { raw: { width: 4, height: 4, channels: 4 } }).webp({ lossless: true }).toBuffer();
    const img = await decodeImage(rgba, 4, 'lanczos3');
    expect(img.length).toBe(4 * 4 * 3);
    expect(px(img, 4, 2, 2)).toEqual([200, 200, 200]);
  });

  it('rejects bytes that are not an image', async () => {
    await expect(decodeImage(new Uint8Array([0, 1, 2, 3]), 8, 'lanczos3')).rejects.toThrow();
  });

  it('decodes many at once and marks the undecodable ones with their index', async () => {
    const good = new Uint8Array(await halves(8, 8));
    const list = [good, new Uint8Array([9, 9, 9]), good];
    const out = await decodeImages(list.length, async (i) => list[i]!, 4, { concurrency: 2, kernel: 'lanczos3' });
    expect(out[0]).toBeInstanceOf(Uint8Array);
    expect(out[1]).toBeInstanceOf(ImageDecodeError);
    expect((out[1] as ImageDecodeError).index).toBe(1);
    expect(out[2]).toBeInstanceOf(Uint8Array);
  });

  it('decodes ahead in order, a promise per image, reading at most `readAhead` images ahead', async () => {
    const good = new Uint8Array(await halves(8, 8));
    const list = [good, good, new Uint8Array([9, 9, 9]), good, good, good, good, good, good, good];
    let reading = 0;
    let most = 0;
    const started: number[] = [];
    const read = async (i: number) => {
      started.push(i);
      most = Math.max(most, ++reading);
      await new Promise((r) => setTimeout(r, 5));
      reading--;
      return list[i]!;
    };
    const promises = decodeInOrder(list.length, read, 4, { concurrency: 1, readAhead: 4, kernel: 'lanczos3' });
    expect(promises).toHaveLength(10);
    // One image decodes at a time while the next ones are read: 4 reads at once, never more.
    expect(started).toEqual([0, 1, 2, 3]);
    // Nobody awaited anything yet: the last image is decoded anyway.
    expect(await promises[9]).toBeInstanceOf(Uint8Array);
    const out = await Promise.all(promises);
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(most).toBe(4);
    expect(out[2]).toBeInstanceOf(ImageDecodeError);
    expect(out.filter((o) => o instanceof Uint8Array)).toHaveLength(9);
  });

  it('rejects the image whose bytes cannot be read, and those not started after it', async () => {
    const good = new Uint8Array(await halves(8, 8));
    const promises = decodeInOrder(4, async (i) => {
      if (i === 1) throw new Error('storage is down');
      return good;
    }, 4, { concurrency: 1, kernel: 'lanczos3' });
    expect(await promises[0]).toBeInstanceOf(Uint8Array);
    await expect(promises[1]).rejects.toThrow('storage is down');
    await expect(promises[3]).rejects.toThrow('storage is down');
    // A read that throws at once, read ahead while image 0 decodes, fails image 1 too, not image 0.
    const thrown = decodeInOrder(4, (i) => {
      if (i === 1) throw new Error('bad key');
      return Promise.resolve(good);
    }, 4, { concurrency: 1, kernel: 'lanczos3' });
    expect(await thrown[0]).toBeInstanceOf(Uint8Array);
    await expect(thrown[1]).rejects.toThrow('bad key');
    await expect(thrown[2]).rejects.toThrow('bad key');
  });
});

describe('normalizePixels', () => {
  it('scales per the backbone preprocessing', () => {
    const src = Uint8Array.of(0, 51, 255, 255, 0, 0);
    const close = (a: Float32Array, b: number[]) => b.forEach((v, i) => expect(a[i]).toBeCloseTo(v, 6));
    close(normalizePixels(src, PREPROCESSING.tf), [-1, 51 / 127.5 - 1, 1, 1, -1, -1]);
    close(normalizePixels(src, PREPROCESSING.unit), [0, 51 / 255, 1, 1, 0, 0]);
    const caffe = normalizePixels(Uint8Array.of(10, 20, 30), PREPROCESSING.caffe);
    // BGR order, ImageNet means subtracted
    expect(caffe[0]).toBeCloseTo(30 - 103.939, 4);
    expect(caffe[1]).toBeCloseTo(20 - 116.779, 4);
    expect(caffe[2]).toBeCloseTo(10 - 123.68, 4);
  });
});

describe('carveSplits', () => {
  const refs = (n: number, label: number) => Array.from({ length: n }, (_, i) => ({ key: `c${label}/${String(i).padStart(3, '0')}`, label }));

  it('carves the same stratified share of each class, reproducibly', () => {
    const train = [...refs(50, 0), ...refs(20, 1)];
    const a = carveSplits({ train, validation: [], test: [] }, { validation: 0.2, test: 0.1, seed: 5 }, 2);
    expect(a.validation.filter((r) => r.label === 0)).toHaveLength(10);
    expect(a.validation.filter((r) => r.label === 1)).toHaveLength(4);
    expect(a.test.filter((r) => r.label === 0)).toHaveLength(5);
    expect(a.test.filter((r) => r.label === 1)).toHaveLength(2);
    expect(a.train).toHaveLength(70 - 14 - 7);
    const keys = new Set([...a.train, ...a.validation, ...a.test].map((r) => r.key));
    expect(keys.size).toBe(70);
    const b = carveSplits({ train: [...train].reverse(), validation: [], test: [] }, { validation: 0.2, test: 0.1, seed: 5 }, 2);
    expect(b.validation.map((r) => r.key).sort()).toEqual(a.validation.map((r) => r.key).sort());
    const c = carveSplits({ train, validation: [], test: [] }, { validation: 0.2, test: 0.1, seed: 6 }, 2);
    expect(c.validation.map((r) => r.key).sort()).not.toEqual(a.validation.map((r) => r.key).sort());
  });

  it('never carves a group of near-copies apart', () => {
    // Ten groups of four near-copies of class 0 (one of them with a copy labelled 1), and twenty single images.
    const train: ImageRef[] = [...refs(40, 0).map((r, i) => ({ ...r, group: `g${Math.floor(i / 4)}` })), ...refs(20, 1)];
    train.push({ key: 'c1/zzz-copy-of-g3', label: 1, group: 'g3' });
    for (const seed of [1, 2, 3, 4, 5]) {
      const s = carveSplits({ train, validation: [], test: [] }, { validation: 0.2, test: 0.1, seed }, 2);
      const where = new Map<string, Set<string>>();
      for (const [name, refsOf] of Object.entries({ train: s.train, validation: s.validation, test: s.test })) {
        for (const r of refsOf) if (r.group) where.set(r.group, (where.get(r.group) ?? new Set()).add(name));
      }
      expect([...where.values()].every((splits) => splits.size === 1)).toBe(true);
      expect(s.train.length + s.validation.length + s.test.length).toBe(61);
      // Whole groups of four: the share of class 0 is met to within a group.
      expect(Math.abs(s.validation.filter((r) => r.label === 0).length - 8)).toBeLessThanOrEqual(4);
    }
    // Without groups, the same images as before groups existed.
    const plain = carveSplits({ train: train.map(({ group: _g, ...r }) => r), validation: [], test: [] }, { validation: 0.2, test: 0.1, seed: 5 }, 2);
    expect(plain.validation.filter((r) => r.label === 0)).toHaveLength(8);
  });

  it('leaves a class a training image even where one group holds all of it', () => {
    const train = [...refs(6, 0).map((r) => ({ ...r, group: 'all' })), ...refs(10, 1)];
    const s = carveSplits({ train, validation: [], test: [] }, { validation: 0.5, test: 0, seed: 1 }, 2);
    expect(s.train.filter((r) => r.label === 0)).toHaveLength(6);
    expect(s.validation.filter((r) => r.label === 1)).toHaveLength(5);
  });

  it('keeps splits the dataset already has', () => {
    const given = { train: refs(10, 0), validation: refs(3, 1), test: [] };
    const s = carveSplits(given, { validation: 0.2, test: 0, seed: 1 }, 2);
    expect(s.validation).toEqual(given.validation);
    expect(s.train).toHaveLength(10);
    expect(s.carved).toEqual({ validation: false, test: false });
  });
});

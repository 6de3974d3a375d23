// Perceptual fingerprints and near-duplicate pairing: copies made with sharp pair with their original, distinct
// scenes do not, and the report groups and orders what pairs.
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { fingerprintImage, type Fingerprint } from '../src/datasets/fingerprint';
import { compare, DEFAULT_MATCH, findNearPairs, popcount32 } from '../src/datasets/near-duplicates';
import { analyseDataset, type HealthImage } from '../src/datasets/health';
import { sceneImage } from '../../../test/support/images';

const cut = async (b: Buffer, l: number, t: number, r: number, btm: number) => {
  const m = await sharp(b).metadata();
  const [L, T] = [Math.round(m.width! * l), Math.round(m.height! * t)];
  return sharp(b)
    .extract({ left: L, top: T, width: m.width! - L - Math.round(m.width! * r), height: m.height! - T - Math.round(m.height! * btm) })
    .jpeg({ quality: 80 })
    .toBuffer();
};

describe('near-duplicates', () => {
  let original: Buffer;
  let scenes: Fingerprint[];

  beforeAll(async () => {
    original = await sceneImage(7001, 400, 300);
    scenes = await Promise.all(Array.from({ length: 40 }, async (_, i) => fingerprintImage(await sceneImage(8000 + i))));
  });

  it('counts bits', () => {
    expect([0, 1, 0xff, 0x80000000, 0xffffffff, 0x55555555].map(popcount32)).toEqual([0, 1, 8, 1, 32, 16]);
  });

  it('pairs re-encoded, resized and slightly cropped copies with their original', async () => {
    const copies = {
      'quality 50': await sharp(original).jpeg({ quality: 50 }).toBuffer(),
      'resized to 45%': await sharp(original).resize(180).jpeg({ quality: 85 }).toBuffer(),
      'png': await sharp(original).png().toBuffer(),
      '6% off the left': await cut(original, 0.06, 0, 0, 0),
      '3% off every side': await cut(original, 0.03, 0.03, 0.03, 0.03),
      '5% off the bottom, resized': await sharp(await cut(original, 0, 0, 0, 0.05)).resize(250).toBuffer(),
    };
    const fps = [await fingerprintImage(original), ...(await Promise.all(Object.values(copies).map(fingerprintImage)))];
    const pairs = findNearPairs(fps);
    for (let i = 1; i < fps.length; i++) {
      expect(pairs.some((p) => p.a === 0 && p.b === i), `${Object.keys(copies)[i - 1]}: ${JSON.stringify(compare(fps[0]!, fps[i]!))}`).toBe(true);
    }
  });

  it('pairs a photo stored with an EXIF rotation with a copy saved upright', async () => {
    const tagged = await sharp(original).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer();
    const upright = await sharp(tagged).rotate().jpeg({ quality: 80 }).toBuffer();
    expect((await sharp(upright).metadata()).width).toBe(300);
    expect(findNearPairs([await fingerprintImage(tagged), await fingerprintImage(upright)])).toHaveLength(1);
  });

  it('pairs no two distinct scenes', () => {
    expect(findNearPairs(scenes)).toEqual([]);
  });

  it('keeps apart images alike in gray but not in colour', async () => {
    const hue = await sharp(original).modulate({ hue: 180 }).jpeg({ quality: 85 }).toBuffer();
    const [a, b] = [await fingerprintImage(original), await fingerprintImage(hue)];
    expect(findNearPairs([a, b], { ...DEFAULT_MATCH, maxColour: 1 })).toHaveLength(1);
    expect(compare(a, b).colour).toBeGreaterThan(DEFAULT_MATCH.maxColour);
    expect(findNearPairs([a, b])).toEqual([]);
  });

  it('groups copies within a split, lists each cross-split pair once, and drops a later-split copy once', async () => {
    const fp = await fingerprintImage(original);
    const resaved = await fingerprintImage(await sharp(original).jpeg({ quality: 60 }).toBuffer());
    const im = (id: string, split: HealthImage['split'], label: string, fingerprint: Fingerprint): HealthImage => ({
      id,
      path: `${split}/${label}/${id}.jpg`,
      split,
      label,
      width: 400,
      height: 300,
      fingerprint,
    });
    const report = analyseDataset({
      classes: ['a', 'b'],
      splits: { train: { a: 3, b: 1 }, test: { a: 1, b: 1 } },
      copies: [],
      images: [im('t1', 'train', 'a', fp), im('x1', 'train', 'b', scenes[0]!), im('t2', 'train', 'a', resaved), im('s1', 'test', 'a', resaved), im('s2', 'test', 'b', scenes[1]!), im('t3', 'train', 'a', scenes[2]!)],
    });
    expect(report.nearDuplicates).toEqual([expect.objectContaining({ split: 'train', mixedLabels: false, images: [expect.objectContaining({ imageId: 't1' }), expect.objectContaining({ imageId: 't2' })] })]);
    expect(report.leakage.map((l) => l.images.map((i) => i.imageId))).toEqual(expect.arrayContaining([['t1', 's1'], ['t2', 's1']]));
    expect(report.leakage).toHaveLength(2);
    expect(report.leakedImageIds).toEqual(['s1']);
    expect(report.summary).toMatchObject({ nearDuplicateGroups: 1, nearDuplicateImages: 2, leakagePairs: 2, leakedImages: 1 });
    expect(report.nearDuplicatesSearched).toBe(true);

    // Over the pairwise limit, the rest of the report is made and says what was not.
    const large = analyseDataset({ classes: ['a', 'b'], splits: {}, copies: [], images: [...Array(6)].map((_, i) => im(`i${i}`, 'train', 'a', fp)), maxCompared: 5 });
    expect(large.nearDuplicatesSearched).toBe(false);
    expect(large.summary.nearDuplicateGroups).toBe(0);
    expect(large.findings[0]!.kind).toBe('near_duplicates_not_searched');
  });
});

// The health report of an uploaded dataset: near-copies planted with sharp (re-encoded, resized, cropped) across
// and within splits are found by path and id, and nothing else is paired. Real Redis and S3, through app.inject().
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app';
import { createDeps, type ApiDeps } from '../src/deps';
import { keys } from '@graft/storage';
import { testConfig } from '../../../test/support/services';
import { sceneImage, zipOf, type Entry } from '../../../test/support/images';

const KEY = 'key-tenant-health-0123456789';
const auth = { authorization: `Bearer ${KEY}` };

const reencode = (b: Buffer, quality: number) => sharp(b).jpeg({ quality }).toBuffer();
const resize = async (b: Buffer, scale: number) => {
  const m = await sharp(b).metadata();
  return sharp(b).resize(Math.round(m.width! * scale)).jpeg({ quality: 80 }).toBuffer();
};
const crop = async (b: Buffer, left: number, top: number) => {
  const m = await sharp(b).metadata();
  const [l, t] = [Math.round(m.width! * left), Math.round(m.height! * top)];
  return sharp(b).extract({ left: l, top: t, width: m.width! - l, height: m.height! - t }).jpeg({ quality: 85 }).toBuffer();
};

/** A three-split dataset of distinct scenes, with the faults each test looks for planted in it. */
async function plantedDataset(): Promise<{ entries: Entry[]; leaks: [string, string][] }> {
  const entries: Entry[] = [];
  const add = (path: string, data: Buffer) => entries.push({ path, data });
  let seed = 1;
  const per = { train: 12, validation: 4, test: 3 } as const;
  for (const [split, n] of Object.entries(per)) {
    for (const c of ['cats', 'dogs']) for (let i = 0; i < n; i++) add(`${split}/${c}/${i}.jpg`, await sceneImage(seed++));
  }
  for (let i = 0; i < 3; i++) add(`train/birds/${i}.jpg`, await sceneImage(seed++));
  const at = (path: string) => entries.find((e) => e.path === path)!.data;

  // Across splits: every kind of copy.
  add('validation/cats/resaved.jpg', await reencode(at('train/cats/0.jpg'), 55));
  add('test/dogs/smaller.jpg', await resize(at('train/dogs/1.jpg'), 0.55));
  add('validation/dogs/cropped.jpg', await crop(at('train/dogs/2.jpg'), 0.04, 0.03));
  add('test/cats/from-validation.jpg', await resize(at('validation/cats/1.jpg'), 0.7));
  const leaks: [string, string][] = [
    ['train/cats/0.jpg', 'validation/cats/resaved.jpg'],
    ['train/dogs/1.jpg', 'test/dogs/smaller.jpg'],
    ['train/dogs/2.jpg', 'validation/dogs/cropped.jpg'],
    ['validation/cats/1.jpg', 'test/cats/from-validation.jpg'],
  ];
  // Within train: a burst shot (brighter, re-saved) and a near-copy filed under another class.
  add('train/cats/burst.jpg', await sharp(at('train/cats/3.jpg')).modulate({ brightness: 1.06 }).jpeg({ quality: 75 }).toBuffer());
  add('train/dogs/misfiled.jpg', await resize(at('train/cats/4.jpg'), 0.8));
  // Byte-identical, in test: kept once, at its first path.
  add('test/cats/exact.jpg', at('train/cats/5.jpg'));
  // Odd shapes.
  add('train/dogs/tiny.jpg', await sceneImage(seed++, 40, 30));
  add('train/cats/panorama.jpg', await sceneImage(seed++, 600, 150));
  return { entries, leaks };
}

describe('dataset health', () => {
  let deps: ApiDeps;
  let app: FastifyInstance;
  let planted: Awaited<ReturnType<typeof plantedDataset>>;
  let dataset: any;
  let health: any;

  beforeAll(async () => {
    deps = createDeps(testConfig({ GRAFT_API_KEYS: `health:${KEY}` }));
    await deps.storage.ensureBucket();
    app = await buildApp(deps);
    planted = await plantedDataset();
    const res = await app.inject({
      method: 'POST',
      url: '/v1/datasets?name=planted',
      headers: { ...auth, 'content-type': 'application/zip' },
      payload: await zipOf(planted.entries),
    });
    expect(res.statusCode).toBe(201);
    dataset = res.json();
    const h = await app.inject({ url: `/v1/datasets/${dataset.id}/health`, headers: auth });
    expect(h.statusCode).toBe(200);
    health = h.json();
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await deps?.close();
  });

  it('finds every planted cross-split copy as leakage, by path, id and split, and no other pair', () => {
    const found = health.leakage.map((l: any) => [l.images[0].path, l.images[1].path]);
    expect(new Set(found.map(String))).toEqual(new Set(planted.leaks.map(String)));
    for (const l of health.leakage) {
      expect(l.images[0].imageId).toMatch(/^img_[0-9a-f]{20}$/);
      expect(l.images[0].split).toBe(l.images[0].path.split('/')[0]);
      expect(l.images[1].split).toBe(l.images[1].path.split('/')[0]);
      expect(l.similarity).toBeGreaterThan(0.8);
      expect(l.sameLabel).toBe(true);
    }
    const later = planted.leaks.map(([, copy]) => health.leakage.find((l: any) => l.images[1].path === copy).images[1].imageId);
    expect(new Set(health.leakedImageIds)).toEqual(new Set(later));
  });

  it('groups near-identical images within a split and flags a group with two labels', () => {
    const groups = health.nearDuplicates.map((g: any) => ({ split: g.split, mixed: g.mixedLabels, paths: g.images.map((i: any) => i.path).sort() }));
    expect(groups).toHaveLength(2);
    expect(groups).toContainEqual({ split: 'train', mixed: false, paths: ['train/cats/3.jpg', 'train/cats/burst.jpg'] });
    expect(groups).toContainEqual({ split: 'train', mixed: true, paths: ['train/cats/4.jpg', 'train/dogs/misfiled.jpg'] });
    expect(health.findings.map((f: any) => f.kind)).toEqual(expect.arrayContaining(['leakage', 'near_duplicates', 'conflicting_labels']));
  });

  it('records every group by image id in the index the worker trains from (a carved split keeps a group whole)', async () => {
    const index = await deps.storage.getJson<{ nearDuplicateGroups: string[][] }>(keys.datasetIndex('health', dataset.id));
    const ids = health.nearDuplicates.map((g: any) => g.images.map((i: any) => i.imageId).sort());
    expect(index.nearDuplicateGroups.map((g) => [...g].sort())).toEqual(expect.arrayContaining(ids));
    expect(index.nearDuplicateGroups).toHaveLength(ids.length);
  });

  it('reports exact copies, tiny and extreme-aspect images, a small class and the class balance', () => {
    expect(health.exactCopies).toEqual([
      expect.objectContaining({ path: 'test/cats/exact.jpg', split: 'test', kept: expect.objectContaining({ path: 'train/cats/5.jpg' }) }),
    ]);
    expect(health.tinyImages.map((i: any) => i.path)).toEqual(['train/dogs/tiny.jpg']);
    expect(health.extremeAspectImages).toEqual([expect.objectContaining({ path: 'train/cats/panorama.jpg', aspect: 4 })]);
    expect(health.classBalance.smallClasses).toEqual([{ class: 'birds', count: 3, othersMedian: 14 }]);
    expect(health.classBalance.counts.train).toEqual({ birds: 3, cats: 14, dogs: 14 });
    expect(health.classBalance.imbalanceRatio).toBe(4.67);
  });

  it('carries the counts in the dataset record', async () => {
    const expected = {
      leakagePairs: 4,
      leakedImages: 4,
      nearDuplicateGroups: 2,
      nearDuplicateImages: 4,
      exactCopies: 1,
      tinyImages: 1,
      extremeAspectImages: 1,
      smallClasses: 1,
      images: dataset.imageCount,
    };
    expect(dataset.health).toEqual(expected);
    expect((await app.inject({ url: `/v1/datasets/${dataset.id}`, headers: auth })).json().health).toEqual(expected);
    expect(health.summary).toEqual(expected);
  });

  it('serves each image and its thumbnail by id, and lists images with their archive paths', async () => {
    const list = await app.inject({ url: `/v1/datasets/${dataset.id}/images?split=test&class=dogs&limit=100`, headers: auth });
    expect(list.statusCode).toBe(200);
    const items = list.json().items;
    expect(items.map((i: any) => i.path).sort()).toEqual(['test/dogs/0.jpg', 'test/dogs/1.jpg', 'test/dogs/2.jpg', 'test/dogs/smaller.jpg']);
    const smaller = items.find((i: any) => i.path === 'test/dogs/smaller.jpg');
    const original = await app.inject({ url: `/v1/datasets/${dataset.id}/images/${smaller.imageId}`, headers: auth });
    expect(original.statusCode).toBe(200);
    expect(original.headers['content-type']).toBe('image/jpeg');
    const uploaded = planted.entries.find((e) => e.path === 'test/dogs/smaller.jpg')!.data;
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(original.rawPayload)).toBe(sha(uploaded));
    expect(smaller.imageId).toBe(`img_${sha(uploaded).slice(0, 20)}`);

    const thumb = await app.inject({ url: `/v1/datasets/${dataset.id}/images/${smaller.imageId}/thumbnail?size=48`, headers: auth });
    expect(thumb.statusCode).toBe(200);
    expect(await sharp(thumb.rawPayload).metadata()).toMatchObject({ format: 'jpeg', width: 48, height: 48 });

    const missing = await app.inject({ url: `/v1/datasets/${dataset.id}/images/img_${'0'.repeat(20)}`, headers: auth });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('IMAGE_NOT_FOUND');
    const badId = await app.inject({ url: `/v1/datasets/${dataset.id}/images/not-an-id`, headers: auth });
    expect(badId.statusCode).toBe(400);
  });

  it('answers 404 for the health of a dataset that does not exist, or that was stored without a report', async () => {
    const res = await app.inject({ url: '/v1/datasets/ds_doesnotexist/health', headers: auth });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('DATASET_NOT_FOUND');

    const other = await app.inject({
      method: 'POST',
      url: '/v1/datasets?name=older',
      headers: { ...auth, 'content-type': 'application/zip' },
      payload: await zipOf(planted.entries.filter((e) => /^train\/(cats|dogs)\/\d+\.jpg$/.test(e.path))),
    });
    expect(other.statusCode).toBe(201);
    expect(other.json().health).toMatchObject({ leakagePairs: 0, nearDuplicateGroups: 0 });
    await deps.storage.deleteKeys([keys.datasetHealth('health', other.json().id)]);
    const older = await app.inject({ url: `/v1/datasets/${other.json().id}/health`, headers: auth });
    expect(older.statusCode).toBe(404);
    expect(older.json().error.code).toBe('HEALTH_NOT_AVAILABLE');
  });
});

// Backbone weights read from an s3:// prefix of the real S3-protocol server, through @graft/vision's loader.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend, listBackbones, loadBackbone } from '@graft/vision';
import { backboneSource, ObjectNotFoundError, parseS3Url, s3BackboneFiles, Storage } from '@graft/storage';
import { testConfig } from '../../../test/support/services';
import { SHARED_MODELS, uploadBackbone } from '../../../test/support/s3-backbones';

const NAME = 'mobilenet_v1_0.25_224';

describe('s3:// URLs', () => {
  it('parses bucket and prefix, and refuses anything else', () => {
    expect(parseS3Url('s3://weights/team/backbones')).toEqual({ bucket: 'weights', prefix: 'team/backbones/' });
    expect(parseS3Url('s3://weights/team/')).toEqual({ bucket: 'weights', prefix: 'team/' });
    expect(parseS3Url('s3://weights')).toEqual({ bucket: 'weights', prefix: '' });
    expect(parseS3Url('s3://Weights/x')).toBeNull();
    expect(parseS3Url('https://weights/x')).toBeNull();
  });
});

describe('backbone weights under an s3:// prefix', () => {
  const storage = new Storage(testConfig().s3);
  let url: string;
  beforeAll(async () => {
    await initBackend();
    url = await uploadBackbone(storage, NAME);
  });
  afterAll(() => storage.close());

  it('stands for a folder or URL as it is, and for an s3:// prefix as files read with the S3 connection', () => {
    expect(backboneSource('/srv/models', storage)).toBe('/srv/models');
    expect(backboneSource('https://example.com/models', storage)).toBe('https://example.com/models');
    expect(() => backboneSource('s3://a/x', storage)).toThrow(/must look like s3:\/\/bucket\/prefix/);
    const files = backboneSource(url, storage);
    expect(typeof files).toBe('object');
    expect((files as { describe(p: string): string }).describe(`${NAME}/model.json`)).toBe(`${url}${NAME}/model.json`);
  });

  it('answers whether a file is there and reads it byte for byte', async () => {
    const files = s3BackboneFiles(url, storage);
    expect(await files.exists(`${NAME}/model.json`)).toBe(true);
    expect(await files.exists(`${NAME}/nope.bin`)).toBe(false);
    const bytes = await files.read(`${NAME}/group1-shard1of1`);
    const local = await import('node:fs').then((fs) => fs.readFileSync(`${SHARED_MODELS}/${NAME}/group1-shard1of1`));
    expect(Buffer.from(bytes).equals(local)).toBe(true);
    const missing = files.read(`${NAME}/nope.bin`);
    await expect(missing).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(missing).rejects.toThrow(`${url}${NAME}/nope.bin is not there`);
  });

  it('loads the backbone with the same weights as from the folder: same features for the same input', async () => {
    const fromFolder = await loadBackbone(NAME, SHARED_MODELS);
    const fromS3 = await loadBackbone(NAME, s3BackboneFiles(url, storage));
    const x = tf.randomUniform([1, 224, 224, 3], -1, 1, 'float32', 7);
    const [a, b] = [fromFolder, fromS3].map((m) => m.predict(x) as tf.Tensor);
    expect(b!.shape).toEqual([1, 7, 7, 256]);
    const fa = a!.dataSync() as Float32Array;
    const fb = b!.dataSync() as Float32Array;
    let maxDiff = 0;
    for (let i = 0; i < fa.length; i++) maxDiff = Math.max(maxDiff, Math.abs(fa[i]! - fb[i]!));
    expect(maxDiff).toBeLessThan(1e-6);
    // Features of real weights: not all zero (an empty or misread shard would give zeros or NaN).
    expect(fa.some((v) => v > 0.01)).toBe(true);
    expect(fb.every((v) => Number.isFinite(v))).toBe(true);
    tf.dispose([x, a!, b!]);
    fromFolder.dispose();
    fromS3.dispose();
  });

  it('lists the backbone as available at its s3:// URL, and the others as not', async () => {
    const list = await listBackbones(s3BackboneFiles(url, storage));
    const byName = new Map(list.map((b) => [b.name, b.weights]));
    expect(byName.get(NAME)).toEqual({ available: true, source: `${url}${NAME}/` });
    expect(byName.get('mobilenet_v1_0.75_224')).toEqual({ available: false, source: `${url}mobilenet_v1_0.75_224/` });
    expect(byName.get('vgg16')!.available).toBe(false);
  });

  it('names the missing backbone and the file it looked for', async () => {
    const files = s3BackboneFiles(url, storage);
    const err = await loadBackbone('mobilenet_v1_0.75_224', files).catch((e) => e);
    expect(err.code).toBe('BACKBONE_WEIGHTS_UNAVAILABLE');
    expect(err.message).toContain(`cannot load backbone 'mobilenet_v1_0.75_224' from ${url}mobilenet_v1_0.75_224/`);
    expect(err.message).toContain(`${url}mobilenet_v1_0.75_224/model.json is not there`);
    // A Keras Applications backbone: every file looked for is named.
    const keras = await loadBackbone('vgg16', files).catch((e) => e);
    expect(keras.code).toBe('BACKBONE_WEIGHTS_UNAVAILABLE');
    expect(keras.message).toMatch(new RegExp(`cannot load backbone 'vgg16': ${url.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} has none of vgg16/model.json, vgg16\\.h5`));
    // A prefix in a bucket that does not exist is "not there" too.
    const gone = await loadBackbone(NAME, s3BackboneFiles('s3://graft-no-such-bucket/x', storage)).catch((e) => e);
    expect(gone.message).toContain(`s3://graft-no-such-bucket/x/${NAME}/model.json is not there`);
  });
});

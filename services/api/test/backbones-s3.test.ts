// GET /v1/backbones with GRAFT_BACKBONES=s3://bucket/prefix: weights listed and described from the real
// S3-protocol server, through app.inject().
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { Storage } from '@graft/storage';
import { buildApp } from '../src/app';
import { createDeps, type ApiDeps } from '../src/deps';
import { testConfig } from '../../../test/support/services';
import { uploadBackbone } from '../../../test/support/s3-backbones';

const KEY = 'key-tenant-a-0123456789';
const auth = { authorization: `Bearer ${KEY}` };
const NAME = 'mobilenet_v1_0.25_224';

describe('API backbones from an s3:// prefix', () => {
  let deps: ApiDeps;
  let app: FastifyInstance;
  let url: string;

  beforeAll(async () => {
    const base = testConfig();
    const uploader = new Storage(base.s3);
    url = await uploadBackbone(uploader, NAME);
    uploader.close();
    deps = createDeps(testConfig({ GRAFT_API_KEYS: `alpha:${KEY}`, GRAFT_BACKBONES: url }));
    expect(deps.config.backbones).toBe(url.replace(/\/$/, ''));
    await deps.storage.ensureBucket();
    app = await buildApp(deps);
  });
  afterAll(async () => {
    await app?.close();
    await deps?.close();
  });

  it('lists the backbone under the prefix as available, with its feature shape, and the others as not', async () => {
    const res = await app.inject({ url: '/v1/backbones', headers: auth });
    expect(res.statusCode).toBe(200);
    const list = res.json();
    const mn = list.find((b: any) => b.name === NAME);
    expect(mn.weights).toEqual({ available: true, source: `${url}${NAME}/` });
    expect(mn.featureShape).toEqual([7, 7, 256]);
    expect(mn.params).toBeGreaterThan(200_000);
    const other = list.find((b: any) => b.name === 'mobilenet_v1_0.75_224');
    expect(other.weights).toEqual({ available: false, source: `${url}mobilenet_v1_0.75_224/` });
    expect(other.featureShape).toBeNull();
  });

  it('describes the backbone at its own and at another input size', async () => {
    const one = await app.inject({ url: `/v1/backbones/${NAME}`, headers: auth });
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({ name: NAME, inputSize: 224, featureShape: [7, 7, 256], weights: { available: true } });
    const small = await app.inject({ url: `/v1/backbones/${NAME}?inputSize=160`, headers: auth });
    expect(small.json()).toMatchObject({ inputSize: 160, featureShape: [5, 5, 256] });
  });

  it('answers 404 naming the backbone and the object missing under the prefix', async () => {
    const res = await app.inject({ url: '/v1/backbones/mobilenet_v1_0.75_224', headers: auth });
    expect(res.statusCode).toBe(404);
    const { error } = res.json();
    expect(error.code).toBe('BACKBONE_NOT_FOUND');
    expect(error.message).toContain(`backbone 'mobilenet_v1_0.75_224' cannot be built`);
    expect(error.message).toContain(`${url}mobilenet_v1_0.75_224/model.json is not there`);
  });
});

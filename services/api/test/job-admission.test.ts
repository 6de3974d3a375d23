// POST /v1/jobs against a real Redis and S3: a config within the schema but beyond what a training process can
// hold or finish is refused before it is queued, and one tenant's queue quota leaves room for the others.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@graft/config';
import { resolveConfig } from '@graft/contract';
import { buildApp } from '../src/app';
import { createDeps, type ApiDeps } from '../src/deps';
import { estimateJob } from '../src/jobs/estimate';
import { testConfig } from '../../../test/support/services';
import { patternDataset, zipOf } from '../../../test/support/images';

const A = 'admission-key-a-0123456789';
const B = 'admission-key-b-0123456789';
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

describe('job admission', () => {
  let deps: ApiDeps;
  let app: FastifyInstance;
  const datasets: Record<string, string> = {};

  beforeAll(async () => {
    deps = createDeps(testConfig({ GRAFT_API_KEYS: `alpha:${A},beta:${B}`, GRAFT_MAX_TENANT_JOBS: '2' }));
    await deps.storage.ensureBucket();
    app = await buildApp(deps);
    const zip = await zipOf(await patternDataset({ train: 4, validation: 2 }));
    for (const [tenant, key] of [['alpha', A], ['beta', B]]) {
      const r = await app.inject({ method: 'POST', url: '/v1/datasets', headers: { ...auth(key!), 'content-type': 'application/zip' }, payload: zip });
      datasets[tenant!] = r.json().id;
    }
  });
  afterAll(async () => {
    await app?.close();
    await deps?.close();
  });

  /**
   * This API's keys in Redis (its queue prefix; the server is shared with the other test files), but for the rate
   * limiter's counters, which every request touches.
   */
  const stateKeys = async () => (await deps.redis.keys(`${deps.config.queuePrefix}:*`)).filter((k) => !k.includes(':ratelimit:')).sort();

  const create = (key: string, tenant: string, config: object = {}) =>
    app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(key), payload: { datasetId: datasets[tenant], config } });

  it('refuses a config whose estimated memory is over the limit, naming the field, and stores nothing', async () => {
    const before = await stateKeys();
    expect(before.length).toBeGreaterThan(0);
    const r = await create(A, 'alpha', {
      method: 'fine_tuning',
      inputSize: 1024,
      batchSize: 512,
      augmentation: { copies: 50 },
      head: { units: 8192, pooling: 'flatten' },
      featureExtraction: { epochs: 500 },
      fineTuning: { epochs: 500 },
    });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe('INVALID_CONFIG');
    expect(r.json().error.message).toContain('GRAFT_MAX_JOB_MEMORY_BYTES');
    expect(r.json().error.details.field).toMatch(/^config\./);
    expect(r.json().error.details.estimatedMemoryBytes).toBeGreaterThan(deps.config.jobs.maxMemoryBytes);
    expect(await stateKeys()).toEqual(before);
    expect((await app.inject({ url: '/v1/jobs', headers: auth(A) })).json().total).toBe(0);
  });

  it('refuses a config that cannot finish within the per-job time limit', async () => {
    const strict = createDeps({ ...testConfig({ GRAFT_API_KEYS: `alpha:${A}` }), queuePrefix: deps.config.queuePrefix, s3: deps.config.s3 });
    strict.config.jobs.maxSeconds = 10;
    const strictApp = await buildApp(strict);
    try {
      const r = await strictApp.inject({
        method: 'POST', url: '/v1/jobs', headers: auth(A),
        payload: { datasetId: datasets.alpha, config: { method: 'scratch', inputSize: 512, featureExtraction: { epochs: 500 } } },
      });
      expect(r.statusCode).toBe(400);
      expect(r.json().error.details.field).toBe('config.featureExtraction.epochs');
      expect(r.json().error.message).toContain('GRAFT_MAX_JOB_SECONDS');
    } finally {
      await strictApp.close();
      await strict.close();
    }
  });

  it("holds each tenant to its queue quota without touching another tenant's", async () => {
    expect((await create(A, 'alpha')).statusCode).toBe(202);
    const second = await create(A, 'alpha');
    expect(second.statusCode).toBe(202);
    const third = await create(A, 'alpha');
    expect(third.statusCode).toBe(429);
    expect(third.json().error).toMatchObject({ code: 'TENANT_QUOTA_EXCEEDED', details: { limit: 2, active: 2 } });
    expect((await create(B, 'beta')).statusCode).toBe(202);
    // A finished (here: cancelled) job frees its place.
    expect((await app.inject({ method: 'POST', url: `/v1/jobs/${second.json().id}/cancel`, headers: auth(A) })).statusCode).toBe(202);
    expect((await create(A, 'alpha')).statusCode).toBe(202);
  });
});

describe('job records', () => {
  it('keeps at most GRAFT_MAX_TENANT_JOB_RECORDS per tenant in Redis, deleting the oldest finished ones', async () => {
    const deps = createDeps(testConfig({ GRAFT_API_KEYS: `alpha:${A}`, GRAFT_MAX_TENANT_JOB_RECORDS: '3', GRAFT_MAX_TENANT_JOBS: '2' }));
    await deps.storage.ensureBucket();
    const app = await buildApp(deps);
    try {
      const zip = await zipOf(await patternDataset({ train: 3 }));
      const ds = (await app.inject({ method: 'POST', url: '/v1/datasets', headers: { ...auth(A), 'content-type': 'application/zip' }, payload: zip })).json().id;
      const ids: string[] = [];
      // Create and cancel, over and over: the records of cancelled jobs must not pile up.
      for (let i = 0; i < 8; i++) {
        const r = await app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(A), payload: { datasetId: ds } });
        expect(r.statusCode).toBe(202);
        ids.push(r.json().id);
        await app.inject({ method: 'POST', url: `/v1/jobs/${r.json().id}/cancel`, headers: auth(A) });
      }
      const listed = (await app.inject({ url: '/v1/jobs', headers: auth(A) })).json();
      expect(listed.total).toBe(3);
      expect(listed.items.map((j: { id: string }) => j.id).sort()).toEqual(ids.slice(-3).sort());
      expect(await deps.redis.exists(`${deps.config.queuePrefix}:job:${ids[0]}`)).toBe(0);
    } finally {
      await app.close();
      await deps.close();
    }
  });
});

describe('job estimate', () => {
  const counts = { train: 2000, validation: 1000, test: 0, classes: 2 };
  const mobilenet = (size: number) => ({ inputSize: size, featureShape: [Math.ceil(size / 32), Math.ceil(size / 32), 768] as [number, number, number], params: 1_830_000 });

  it('fits the default recipe on 3,000 images in the default limits', () => {
    const e = estimateJob(resolveConfig({}), counts, mobilenet(288), 288);
    const defaults = loadConfig({}).jobs;
    expect(e.memoryBytes).toBeLessThan(defaults.maxMemoryBytes);
    expect(e.seconds).toBeLessThan(defaults.maxSeconds);
  });

  it('grows with what the trainer keeps: copies, flatten pooling, input size', () => {
    const base = estimateJob(resolveConfig({}), counts, mobilenet(288), 288);
    const copies = estimateJob(resolveConfig({ augmentation: { copies: 20 } }), counts, mobilenet(288), 288);
    expect(copies.memory.features).toBeGreaterThan(base.memory.features! * 4);
    expect(copies.memoryBytes - base.memoryBytes).toBe(copies.memory.features! - base.memory.features!);
    const fe = (pooling: 'avg' | 'flatten') =>
      estimateJob(resolveConfig({ method: 'feature_extraction', head: { pooling } }), counts, mobilenet(288), 288).memory.features!;
    // 9 x 9 x 768 features kept per sample instead of 768.
    expect(fe('flatten')).toBe(fe('avg') * 81);
    expect(estimateJob(resolveConfig({ inputSize: 576 }), counts, mobilenet(576), 576).memory.images).toBe(
      4 * estimateJob(resolveConfig({}), counts, mobilenet(288), 288).memory.images!,
    );
  });
});

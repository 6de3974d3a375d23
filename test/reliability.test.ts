// Crashes and restarts: a worker killed mid-training, a worker stopped with SIGTERM, Redis restarted,
// S3 unavailable for a while. Each on its own redis-server and S3 server, so restarts disturb no other test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isTerminal } from '@graft/contract';
import { startEmbeddedS3, startRedisServer, type EmbeddedRedis, type EmbeddedS3 } from '@graft/devservers';
import { patternDataset, zipOf } from './support/images';
import { runService, startApi, waitFor, type Service } from './support/processes';
import { ownServersEnv } from './support/services';

const KEY = 'reliability-key-0123456789';
const H = { authorization: `Bearer ${KEY}` };
// Slow enough per epoch (many small batches) that the test can act at a chosen epoch.
const SLOW_CONFIG = {
  method: 'feature_extraction',
  backbone: 'mobilenet_v1_0.25_224',
  inputSize: 64,
  batchSize: 1,
  augmentation: { copies: 2 },
  featureExtraction: { epochs: 8, learningRate: 0.0005 },
  earlyStopping: false,
};

describe('reliability', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-rel-'));
  let redis: EmbeddedRedis;
  let s3: EmbeddedS3;
  let api: Service & { url: string };
  let env: Record<string, string>;
  const workers: Service[] = [];
  let datasetId: string;

  const startWorker = () => {
    const w = runService('services/worker/src/main.ts', env);
    workers.push(w);
    return w;
  };
  const get = async (p: string) => (await fetch(`${api.url}${p}`, { headers: H })).json();
  const createJob = async (config: object = SLOW_CONFIG) => {
    const r = await fetch(`${api.url}/v1/jobs`, {
      method: 'POST',
      headers: { ...H, 'content-type': 'application/json' },
      body: JSON.stringify({ datasetId, config }),
    });
    expect(r.status).toBe(202);
    return (await r.json()).id as string;
  };

  beforeAll(async () => {
    [redis, s3] = await Promise.all([
      startRedisServer({ dir: path.join(dir, 'redis') }),
      startEmbeddedS3({ dir: path.join(dir, 's3') }),
    ]);
    env = { ...ownServersEnv({ redisUrl: redis.url, s3Endpoint: s3.endpoint }, 'rel', KEY), GRAFT_JOB_LOCK_MS: '3000' };
    api = await startApi(env);
    const r = await fetch(`${api.url}/v1/datasets`, {
      method: 'POST',
      headers: { ...H, 'content-type': 'application/zip' },
      body: new Uint8Array(await zipOf(await patternDataset({ train: 12, validation: 4 }, 5))),
    });
    expect(r.status).toBe(201);
    datasetId = (await r.json()).id;
  });
  afterAll(async () => {
    await Promise.all([api?.stop(), ...workers.map((w) => w.stop('SIGKILL'))]);
    await Promise.all([redis?.stop(), s3?.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('resumes a job from its last checkpoint after its worker is killed with SIGKILL at the third epoch', async () => {
    const w1 = startWorker();
    const jobId = await createJob();
    await waitFor('the third epoch', async () => (await get(`/v1/jobs/${jobId}`)).history.length >= 3, 180_000, 50);
    await w1.stop('SIGKILL');
    const atKill = await get(`/v1/jobs/${jobId}`);
    expect(atKill.state).toBe('running');
    const w2 = startWorker();
    const job = await waitFor(
      'the job to finish on the second worker',
      async () => {
        const j = await get(`/v1/jobs/${jobId}`);
        return isTerminal(j.state) ? j : null;
      },
      180_000,
    );
    expect(job.state, w2.output().slice(-2000)).toBe('succeeded');
    expect(job.attempts).toBe(2);
    const rows = job.history as { epoch: number; attempt: number }[];
    // Every epoch once, in order; the first ones from attempt 1, the rest from attempt 2.
    expect(rows.map((r) => r.epoch)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(rows[0].attempt).toBe(1);
    expect(rows.at(-1)!.attempt).toBe(2);
    const firstOfSecond = rows.findIndex((r) => r.attempt === 2);
    expect(firstOfSecond).toBeGreaterThanOrEqual(2);
    expect(rows.slice(0, firstOfSecond).every((r) => r.attempt === 1)).toBe(true);
    // Exactly one model.
    const models = (await get('/v1/models')).items.filter((m: any) => m.jobId === jobId);
    expect(models).toHaveLength(1);
    await w2.stop();
  });

  it('on SIGTERM the worker releases its job, which another worker resumes', async () => {
    const w1 = startWorker();
    const jobId = await createJob();
    await waitFor('the second epoch', async () => (await get(`/v1/jobs/${jobId}`)).history.length >= 2, 180_000, 50);
    await w1.stop('SIGTERM');
    expect(w1.process.exitCode).toBe(0);
    const released = await get(`/v1/jobs/${jobId}`);
    expect(released.state).toBe('queued');
    const w2 = startWorker();
    const job = await waitFor(
      'the job to finish',
      async () => {
        const j = await get(`/v1/jobs/${jobId}`);
        return isTerminal(j.state) ? j : null;
      },
      180_000,
    );
    expect(job.state).toBe('succeeded');
    const rows = job.history as { epoch: number; attempt: number }[];
    expect(rows.map((r) => r.epoch)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(rows[0].attempt).toBe(1);
    expect(rows.at(-1)!.attempt).toBeGreaterThan(1);
    await w2.stop();
  });

  it('answers 503 while Redis is down, says so in /readyz, and loses no queued job across a restart', async () => {
    const jobId = await createJob({ ...SLOW_CONFIG, featureExtraction: { epochs: 2, learningRate: 0.001 }, batchSize: 8 });
    await redis.stop();
    const ready = await fetch(`${api.url}/readyz`);
    expect(ready.status).toBe(503);
    const body = await ready.json();
    expect(body.error.code).toBe('SERVICE_UNAVAILABLE');
    expect(body.error.details.checks.redis).toMatch(/^down/);
    expect(body.error.details.checks.s3).toBe('ok');
    const list = await fetch(`${api.url}/v1/jobs`, { headers: H });
    expect(list.status).toBe(503);
    expect((await list.json()).error.code).toBe('SERVICE_UNAVAILABLE');
    // Same port, same data folder: the append-only file brings the queue back.
    redis = await startRedisServer({ dir: path.join(dir, 'redis'), port: redis.port });
    await waitFor('readiness', async () => (await fetch(`${api.url}/readyz`)).status === 200, 20_000);
    expect((await get(`/v1/jobs/${jobId}`)).state).toBe('queued');
    const w = startWorker();
    const job = await waitFor(
      'the queued job to run after the restart',
      async () => {
        const j = await get(`/v1/jobs/${jobId}`);
        return j.state === 'succeeded' ? j : null;
      },
      180_000,
    );
    expect(job.history).toHaveLength(2);
    await w.stop();
  });

  it('answers 503 while S3 is down and recovers when it is back', async () => {
    await s3.stop();
    const ready = await fetch(`${api.url}/readyz`);
    expect(ready.status).toBe(503);
    expect((await ready.json()).error.details.checks.s3).toMatch(/^down/);
    const list = await fetch(`${api.url}/v1/datasets`, { headers: H });
    expect(list.status).toBe(503);
    expect((await list.json()).error.message).toMatch(/unavailable/);
    s3 = await startEmbeddedS3({ dir: path.join(dir, 's3'), port: s3.port });
    await waitFor('readiness', async () => (await fetch(`${api.url}/readyz`)).status === 200, 20_000);
    const again = await get('/v1/datasets');
    expect(again.items.map((d: any) => d.id)).toContain(datasetId);
  });
});

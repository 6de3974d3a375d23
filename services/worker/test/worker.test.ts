// The worker as a process against the real Redis and S3 server of the test setup, its jobs put straight into the
// queue and its datasets straight into the bucket (no API): a permanent failure fails the job at once, a transient
// one is retried and the job then succeeds, and SIGTERM stops the worker with its job released to another worker.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptConfig, isTerminal, plannedEpochs } from '@graft/contract';
import { createRedis, queuedJobRecord, TRAIN_JOB, trainJobOptions, TrainQueue, type JobRecord } from '@graft/queue';
import { Storage } from '@graft/storage';
import { configEnv, testConfig } from '../../../test/support/services';
import { patternDataset } from '../../../test/support/images';
import { runService, waitFor, type Service } from '../../../test/support/processes';
import { enqueueJob, putDataset } from '../../../test/support/jobs';

const TENANT = 'wt';
const SMALL = {
  method: 'feature_extraction' as const,
  backbone: 'mobilenet_v1_0.25_224',
  inputSize: 64,
  batchSize: 4,
  augmentation: false as const,
  featureExtraction: { epochs: 2, learningRate: 0.001 },
  earlyStopping: false as const,
};
// Many small steps and epochs, so that the test can act while the job runs.
const SLOW = { ...SMALL, batchSize: 1, featureExtraction: { epochs: 30, learningRate: 0.0005 } };

describe('the worker process', () => {
  const config = testConfig();
  const redis = createRedis(config.redisUrl);
  const queue = new TrainQueue(redis, config.queuePrefix, 3);
  const storage = new Storage(config.s3);
  const env = { ...configEnv(config), GRAFT_JOB_LOCK_MS: '3000', GRAFT_WORKER_METRICS_PORT: '0' };
  const workers: Service[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-worker-'));
  let datasetId: string;

  const startWorker = (extra: Record<string, string> = {}) => {
    const w = runService('services/worker/src/main.ts', { ...env, ...extra });
    workers.push(w);
    return w;
  };
  const record = async (id: string) => (await queue.jobs.get(id))!;
  const finished = (id: string, w: Service) =>
    waitFor(`job ${id} to finish`, async () => {
      const r = await record(id);
      if (w.process.exitCode !== null) throw new Error(`the worker exited:\n${w.output().slice(-3000)}`);
      return isTerminal(r.state) ? r : null;
    }, 180_000);

  beforeAll(async () => {
    await storage.ensureBucket();
    datasetId = await putDataset(storage, TENANT, await patternDataset({ train: 6, validation: 2 }, 7));
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await queue.close();
    redis.disconnect();
    storage.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('fails a job at once, without retries, where its failure is permanent (its dataset is gone)', async () => {
    const w = startWorker();
    const id = await enqueueJob(queue, TENANT, 'ds_gone', SMALL);
    const rec = await finished(id, w);
    expect(rec.state).toBe('failed');
    expect(rec.error?.code).toBe('DATASET_NOT_FOUND');
    expect(rec.attempts).toBe(1);
    // The record is failed first, then BullMQ moves the job to failed (not back to the queue for a retry).
    const state = await waitFor('BullMQ to finish the job', async () => {
      const now = await (await queue.queue.getJob(id))!.getState();
      return now !== 'active' && now;
    }, 30_000, 100);
    expect(state).toBe('failed');
    const job = (await queue.queue.getJob(id))!;
    expect(job.attemptsMade).toBe(1);
    expect(job.opts.attempts).toBe(3);
    await w.stop();
  });

  it('fails the record of a job whose queued payload it cannot read (a config left to defaults, as an older API queued it)', async () => {
    const w = startWorker();
    const id = `job_${randomBytes(6).toString('hex')}`;
    const resolved = acceptConfig(SMALL, SMALL.inputSize);
    await queue.jobs.create(queuedJobRecord({ id, tenant: TENANT, datasetId, epochs: plannedEpochs(resolved), config: resolved }));
    // The payload carries the config as the user gave it: the worker cannot know which defaults it was accepted with.
    await queue.queue.add(TRAIN_JOB, { jobId: id, tenant: TENANT, datasetId, manifestKey: 'm', config: { backbone: SMALL.backbone } }, { ...trainJobOptions(3), jobId: id });
    const rec = await finished(id, w);
    expect(rec.state).toBe('failed');
    expect(rec.error?.code).toBe('INVALID_JOB_PAYLOAD');
    expect(rec.error?.message).toMatch(/config is not resolved/);
    expect(rec.attempts).toBe(0);
    await w.stop();
  });

  it('retries a transient failure (backbone weights not reachable yet) and the job succeeds on its second attempt', async () => {
    const later = path.join(tmp, 'models-later');
    const w = startWorker({ GRAFT_BACKBONES: later });
    const id = await enqueueJob(queue, TENANT, datasetId, SMALL);
    const failedOnce = await waitFor('the first attempt to fail', async () => {
      const r = await record(id);
      return r.error ? r : null;
    }, 120_000, 100);
    expect(failedOnce.error!.code).toBe('BACKBONE_WEIGHTS_UNAVAILABLE');
    expect(failedOnce.attempts).toBe(1);
    // The weights become reachable while the job waits out its backoff.
    fs.symlinkSync(config.backbones, later);
    const rec = await finished(id, w);
    expect(rec.state, w.output().slice(-3000)).toBe('succeeded');
    expect(rec.attempts).toBe(2);
    expect(rec.error).toBeNull();
    expect(rec.history.map((h) => `${h.epoch}:${h.attempt}`)).toEqual(['1:2', '2:2']);
    await w.stop();
  });

  it('on SIGTERM exits, its job released to the queue, and another worker takes the job and finishes it', async () => {
    const first = startWorker();
    const id = await enqueueJob(queue, TENANT, datasetId, SLOW);
    // By the second epoch's row the first epoch's checkpoint is written.
    await waitFor('the second epoch', async () => (await record(id)).history.length >= 2, 180_000, 50);
    await first.stop('SIGTERM');
    expect(first.process.exitCode, first.output().slice(-3000)).toBe(0);
    const released: JobRecord = await record(id);
    expect(released.state).toBe('queued');
    expect(['delayed', 'waiting']).toContain(await (await queue.queue.getJob(id))!.getState());
    const second = startWorker();
    const rec = await finished(id, second);
    expect(rec.state, second.output().slice(-3000)).toBe('succeeded');
    expect(rec.attempts).toBe(2);
    // Resumed from its checkpoint: each epoch once, the first from the run that was stopped.
    expect(rec.history.map((h) => h.epoch)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(rec.history[0]!.attempt).toBe(1);
    expect(rec.history.at(-1)!.attempt).toBe(2);
    await second.stop();
  });
});

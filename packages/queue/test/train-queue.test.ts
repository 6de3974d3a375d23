// The training queue's own behaviour against the real Redis of the test setup, with BullMQ workers running plain
// processors: a transient failure is retried after a backoff, an unrecoverable one is not, and a job whose worker
// stopped renewing its lock (a dead worker) is taken by another.
import { afterAll, describe, expect, inject, it } from 'vitest';
import {
  createRedis,
  TRAIN_QUEUE,
  TrainQueue,
  trainWorkerOptions,
  UnrecoverableError,
  Worker,
  parseTrainJobPayload,
  type Job,
} from '@graft/queue';
import { uniqueName } from '../../../test/support/services';
import { enqueueJob } from '../../../test/support/jobs';

const CONFIG = { backbone: 'mobilenet_v1_0.25_224', inputSize: 64 };

describe('the training queue', () => {
  const prefix = uniqueName('tq');
  const redis = createRedis(inject('redisUrl'));
  const queue = new TrainQueue(redis, prefix, 3);
  const workers: Worker[] = [];
  const worker = (processor: ((job: Job) => Promise<unknown>) | null, opts: { autorun?: boolean; lockMs?: number } = {}) => {
    const w = new Worker(TRAIN_QUEUE, processor, { connection: redis, prefix, autorun: opts.autorun ?? true, ...trainWorkerOptions(opts.lockMs ?? 30_000) });
    workers.push(w);
    return w;
  };
  let closing = false;
  const settled = (id: string) =>
    new Promise<Job>((resolve, reject) => {
      const check = async () => {
        if (closing) return;
        const job = await queue.queue.getJob(id);
        const state = job && (await job.getState());
        if (state === 'completed' || state === 'failed') resolve(job!);
        else setTimeout(() => void check().catch(reject), 100);
      };
      void check().catch(reject);
    });

  afterAll(async () => {
    // No poll may reach Redis once its connection is closing.
    closing = true;
    await Promise.all(workers.map((w) => w.close(true)));
    await queue.close();
    await redis.quit();
  });

  it('retries a transient failure after a backoff, and the job succeeds on its second attempt', async () => {
    const calls: { attempt: number; state: string }[] = [];
    const id = await enqueueJob(queue, 'alpha', 'ds_transient', CONFIG);
    const w = worker(async (job) => {
      calls.push({ attempt: job.attemptsMade + 1, state: await job.getState() });
      if (calls.length === 1) throw new Error('object storage answered 503');
      return { modelId: 'mdl_x' };
    });
    const failedOnce = new Promise<string>((resolve) => w.once('failed', async (job) => resolve(await job!.getState())));
    // Between the attempts the job waits out its backoff.
    expect(await failedOnce).toBe('delayed');
    const job = await settled(id);
    expect(await job.getState()).toBe('completed');
    expect(job.attemptsMade).toBe(2);
    expect(calls.map((c) => c.attempt)).toEqual([1, 2]);
    await w.close();
  });

  it('fails an unrecoverable error at once, with attempts left', async () => {
    let calls = 0;
    const id = await enqueueJob(queue, 'alpha', 'ds_permanent', CONFIG);
    const w = worker(async () => {
      calls++;
      throw new UnrecoverableError('the dataset is corrupt');
    });
    const job = await settled(id);
    expect(await job.getState()).toBe('failed');
    expect(job.failedReason).toBe('the dataset is corrupt');
    expect(job.opts.attempts).toBe(3);
    expect(job.attemptsMade).toBe(1);
    expect(calls).toBe(1);
    await w.close();
  });

  it('gives a job whose worker stopped renewing its lock to another worker, payload intact', async () => {
    const lockMs = 1_000;
    const id = await enqueueJob(queue, 'alpha', 'ds_stalled', CONFIG);
    // The first worker takes the job and then renews nothing, as a worker that died would.
    const dead = worker(null, { autorun: false, lockMs });
    const taken = await dead.getNextJob('dead-worker-token');
    expect(taken?.id).toBe(id);
    expect(await taken!.getState()).toBe('active');
    const picked = new Promise<Job>((resolve) => worker(async (job) => resolve(job), { lockMs }));
    // Taken by the living worker, not failed as stalled.
    const first = await Promise.race([picked.then((job) => ({ taken: job })), settled(id).then((job) => ({ settled: job }))]);
    expect(first).toHaveProperty('taken');
    const job = (first as { taken: Job }).taken;
    expect(job.id).toBe(id);
    expect(parseTrainJobPayload(job.data).config).toEqual(parseTrainJobPayload(taken!.data).config);
    // Put back in the queue once by the stall check, then run to the end by the living worker.
    const done = await settled(id);
    expect(await done.getState()).toBe('completed');
    expect(done.stalledCounter).toBe(1);
    expect(done.attemptsStarted).toBe(2);
  });
});

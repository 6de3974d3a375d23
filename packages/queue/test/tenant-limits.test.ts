// withTenantLimits around a real BullMQ worker on a real redis-server: one tenant's queued jobs do not hold
// every worker slot, and a job past its wall-clock limit fails for good.
import { inject } from 'vitest';
import { afterEach, describe, expect, it } from 'vitest';
import { Queue, Worker, type Job } from 'bullmq';
import { randomBytes } from 'node:crypto';
import { acceptConfig } from '@graft/contract';
import { JobStore, TenantSlots, TIME_LIMIT_CODE, createRedis, queuedJobRecord, withTenantLimits, type JobRecord } from '../src';

const record = (id: string, tenant: string) => queuedJobRecord({ id, tenant, datasetId: 'ds_x', config: acceptConfig({}, 224), epochs: null });

describe('withTenantLimits', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  const setup = async () => {
    const prefix = `tl-${randomBytes(4).toString('hex')}`;
    const redis = createRedis(inject('redisUrl'));
    const queue = new Queue('train', { connection: redis, prefix });
    const store = new JobStore(redis, prefix);
    closers.push(async () => redis.disconnect(), () => queue.close());
    const add = async (id: string, tenant: string, attempts = 1) => {
      await store.create(record(id, tenant));
      await queue.add('train', { jobId: id, tenant }, { jobId: id, attempts });
    };
    const work = (processor: (job: Job, token?: string, signal?: AbortSignal) => Promise<unknown>, maxJobMs: number, concurrency: number) => {
      const slots = new TenantSlots(redis, prefix, 1, 5_000);
      const worker = new Worker('train', withTenantLimits(processor, { slots, store, maxJobMs, retryDelayMs: 100 }), {
        connection: createRedis(inject('redisUrl')),
        prefix,
        concurrency,
      });
      closers.push(() => worker.close());
      return { worker, slots };
    };
    return { add, work, store, queue };
  };

  it("runs one job per tenant at a time and lets another tenant's job past a queue full of the first's", async () => {
    const { add, work, queue } = await setup();
    for (const id of ['job_a1', 'job_a2', 'job_a3', 'job_a4']) await add(id, 'a');
    await add('job_b1', 'b');
    const started: string[] = [];
    let runningA = 0;
    let maxRunningA = 0;
    const { slots } = work(
      async (job) => {
        const { jobId, tenant } = job.data as { jobId: string; tenant: string };
        started.push(jobId);
        if (tenant === 'a') maxRunningA = Math.max(maxRunningA, ++runningA);
        // Long enough that b1 is fetched while a1 still runs, on a loaded machine too.
        await new Promise((r) => setTimeout(r, 2_500));
        if (tenant === 'a') runningA--;
        return jobId;
      },
      60_000,
      3,
    );
    await new Promise<void>((resolve) => {
      const poll = setInterval(async () => {
        if ((await queue.getJobCounts('completed')).completed === 5) clearInterval(poll), resolve();
      }, 100);
    });
    expect(maxRunningA).toBe(1);
    // b1 was queued last, behind four jobs of a, and still ran second.
    expect(started.indexOf('job_b1')).toBe(1);
    expect(await slots.holders('a')).toEqual([]);
  });

  it('stops a job at its wall-clock limit and fails it for good, without a retry', async () => {
    const { add, work, store, queue } = await setup();
    await add('job_slow', 'c', 3);
    let calls = 0;
    work(
      (_job, _token, signal) =>
        new Promise((_, reject) => {
          calls++;
          signal!.addEventListener('abort', () => reject(new Error('aborted')));
        }),
      300,
      1,
    );
    // The record is failed first, then BullMQ moves the job to failed (not back to the queue for a retry).
    const failed = await new Promise<JobRecord>((resolve) => {
      const poll = setInterval(async () => {
        const rec = await store.get('job_slow');
        const state = await (await queue.getJob('job_slow'))!.getState();
        if (rec?.state === 'failed' && state !== 'active') clearInterval(poll), resolve(rec);
      }, 100);
    });
    expect(failed.error?.code).toBe(TIME_LIMIT_CODE);
    const job = await queue.getJob('job_slow');
    expect(await job!.getState()).toBe('failed');
    expect(job!.attemptsMade).toBe(1);
    expect(calls).toBe(1);
  });
});

// Taking back a job's lock after it lapsed, against the real Redis of the test setup, with BullMQ's own
// job fetching (a worker without autorun, so nothing renews the lock but the test).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { Queue, Worker } from 'bullmq';
import { createRedis, reclaimJobLock, TRAIN_QUEUE } from '@graft/queue';
import { isOutageError } from '@graft/storage';
import { freePort } from '@graft/devservers';
import { uniqueName } from '../../../test/support/services';

describe('reclaimJobLock', () => {
  const prefix = uniqueName('lock');
  const redis = createRedis(inject('redisUrl'));
  const queue = new Queue(TRAIN_QUEUE, { connection: redis, prefix });
  const worker = new Worker(TRAIN_QUEUE, null, { connection: redis, prefix, autorun: false, lockDuration: 300 });
  const lockKey = (id: string) => `${prefix}:${TRAIN_QUEUE}:${id}:lock`;

  beforeAll(() => worker.waitUntilReady());
  afterAll(async () => {
    await worker.close();
    await queue.close();
    redis.disconnect();
  });

  it('sets a lapsed lock again for the worker that still has the job active', async () => {
    await queue.add('train', {}, { jobId: 'a1' });
    const job = await worker.getNextJob('token-a');
    expect(job?.id).toBe('a1');
    while ((await redis.exists(lockKey('a1'))) === 1) await new Promise((r) => setTimeout(r, 50));
    expect(await reclaimJobLock(redis, prefix, 'a1', 'token-a', 30_000)).toBe(true);
    expect(await redis.get(lockKey('a1'))).toBe('token-a');
    expect(await redis.pttl(lockKey('a1'))).toBeGreaterThan(20_000);
    expect(await job!.getState()).toBe('active');
  });

  it('refuses where another run holds the lock or the job is not active', async () => {
    expect(await reclaimJobLock(redis, prefix, 'a1', 'token-other', 30_000)).toBe(false);
    expect(await redis.get(lockKey('a1'))).toBe('token-a');
    await queue.add('train', {}, { jobId: 'w1', delay: 60_000 });
    expect(await reclaimJobLock(redis, prefix, 'w1', 'token-a', 30_000)).toBe(false);
    expect(await redis.exists(lockKey('w1'))).toBe(0);
  });
});

describe('outage errors from Redis', () => {
  it('classifies a Redis that is not there as an outage', async () => {
    const down = createRedis(`redis://127.0.0.1:${await freePort()}`, { enableOfflineQueue: false, retryStrategy: () => null, lazyConnect: true });
    down.on('error', () => {});
    const err = await down.connect().then(() => down.ping()).catch((e) => e);
    down.disconnect();
    expect(err).toBeInstanceOf(Error);
    expect(isOutageError(err)).toBe(true);
  });
});

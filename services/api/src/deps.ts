// The shared clients the API is built on, created once and closed once.
import type { Redis } from 'ioredis';
import type { GraftConfig } from '@graft/config';
import { Storage } from '@graft/storage';
import { TrainQueue, createRedis, createRequestRedis } from '@graft/queue';
import { EventHub } from './events';

export interface ApiDeps {
  config: GraftConfig;
  storage: Storage;
  redis: Redis;
  /** A connection whose commands fail at once while Redis is down (rate limits: skipped then, not waited on). */
  limiterRedis: Redis;
  /** A connection in subscriber mode, for job events. */
  subscriber: Redis;
  queue: TrainQueue;
  events: EventHub;
  close(): Promise<void>;
}

export function createDeps(config: GraftConfig): ApiDeps {
  const storage = new Storage(config.s3);
  const redis = createRedis(config.redisUrl, { maxRetriesPerRequest: 2, connectTimeout: 2_000 });
  const subscriber = createRedis(config.redisUrl);
  const limiterRedis = createRequestRedis(config.redisUrl);
  // Errors surface through requests and /readyz; keep the connection's own noise out of the process.
  redis.on('error', () => {});
  subscriber.on('error', () => {});
  limiterRedis.on('error', () => {});
  const queue = new TrainQueue(redis, config.queuePrefix, config.jobAttempts);
  queue.queue.on('error', () => {});
  let closed: Promise<void> | null = null;
  return {
    config,
    storage,
    redis,
    limiterRedis,
    subscriber,
    queue,
    events: new EventHub(subscriber),
    close() {
      closed ??= (async () => {
        await queue.close();
        subscriber.disconnect();
        limiterRedis.disconnect();
        redis.disconnect();
        storage.close();
      })();
      return closed;
    },
  };
}

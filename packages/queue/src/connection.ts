// Redis connections, made once per role. BullMQ workers need maxRetriesPerRequest: null.
import { Redis, type RedisOptions } from 'ioredis';

export type { Redis };

export function createRedis(url: string, opts: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(200 * 2 ** Math.min(times, 6), 5_000),
    ...opts,
  });
}

/** A connection for request paths: commands fail fast while Redis is down instead of queueing forever. */
export function createRequestRedis(url: string): Redis {
  return createRedis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2_000 });
}

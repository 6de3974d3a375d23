// Taking back a running job's lock after Redis was away. A lock is a key with a time to live; when Redis is down
// for longer than that, the lock has lapsed by the time it is back, although the worker that holds the job is
// still running it. BullMQ would then report the job stalled and hand it to another run.
import type { Redis } from 'ioredis';
import { TRAIN_QUEUE } from './names';

// The lock is set again only where the job is still active and nobody else holds it.
const RECLAIM = `
  local current = redis.call('GET', KEYS[1])
  if current and current ~= ARGV[1] then return 0 end
  if not redis.call('LPOS', KEYS[2], ARGV[3]) then return 0 end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SREM', KEYS[3], ARGV[3])
  return 1`;

/**
 * Renews the lock of a training job this worker is running, setting it again where it lapsed. Answers false where
 * the job is no longer this worker's (moved back to the queue as stalled, or taken by another worker).
 */
export async function reclaimJobLock(redis: Redis, prefix: string, jobId: string, token: string, lockMs: number): Promise<boolean> {
  const base = `${prefix}:${TRAIN_QUEUE}`;
  const ok = await redis.eval(RECLAIM, 3, `${base}:${jobId}:lock`, `${base}:active`, `${base}:stalled`, token, String(lockMs), jobId);
  return ok === 1;
}

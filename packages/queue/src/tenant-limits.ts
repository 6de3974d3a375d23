// Fair use of the training workers by tenants, wrapped around a BullMQ processor:
// - at most `concurrency` running jobs per tenant over every worker (a lease per job in one Redis sorted set per
//   tenant, renewed while the job runs, so a crashed worker's slot lapses); a job whose tenant is at its limit
//   goes back to the queue, delayed, without spending an attempt, and the worker takes another tenant's job;
// - a wall-clock limit per job, counted from its first start over every attempt: past it the job is stopped and
//   fails for good with TIME_LIMIT_EXCEEDED.
import type { ErrorCode } from '@graft/contract';
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobStore } from './job-store';

const ACQUIRE = `
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
  if redis.call('ZSCORE', KEYS[1], ARGV[3]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
    return 1
  end
  return 0`;

/** Running jobs per tenant, over every worker. */
export class TenantSlots {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly concurrency: number,
    /** How long a slot is held without renewal. */
    readonly leaseMs: number,
  ) {}

  private key = (tenant: string) => `${this.prefix}:tenant:${tenant}:running`;

  /** Takes (or renews) the job's slot; false where the tenant's other jobs hold every slot. */
  async acquire(tenant: string, jobId: string): Promise<boolean> {
    const now = Date.now();
    const ok = await this.redis.eval(ACQUIRE, 1, this.key(tenant), now, now + this.leaseMs, jobId, this.concurrency, this.leaseMs * 2);
    return ok === 1;
  }

  async release(tenant: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.key(tenant), jobId);
  }

  /** Job ids holding a slot now. */
  async holders(tenant: string): Promise<string[]> {
    return this.redis.zrangebyscore(this.key(tenant), Date.now(), '+inf');
  }
}

export interface TenantLimitOptions {
  slots: TenantSlots;
  store: JobStore;
  /** Wall-clock limit of one job, from its first start, over all its attempts. */
  maxJobMs: number;
  /** How long a job waits, delayed, before it tries for a slot again. */
  retryDelayMs?: number;
  log?: { info(obj: object, msg: string): void };
}

type Processor<R> = (job: Job, token?: string, signal?: AbortSignal) => Promise<R>;

/** The error a job fails with when it runs out of time. */
export const TIME_LIMIT_CODE = 'TIME_LIMIT_EXCEEDED' satisfies ErrorCode;

/**
 * Wraps a processor whose jobs carry `{jobId, tenant}`: the tenant's slot is taken before it runs and let go after,
 * and its AbortSignal also fires when the job's time is up. The processor treats that abort as any other; the
 * wrapper then records the job as failed for its time and throws UnrecoverableError, so it is not retried.
 */
export function withTenantLimits<R>(processor: Processor<R>, opts: TenantLimitOptions): Processor<R> {
  const retryDelayMs = opts.retryDelayMs ?? 2_000;
  return async (job, token, signal) => {
    const { jobId, tenant } = job.data as { jobId: string; tenant: string };
    if (!(await opts.slots.acquire(tenant, jobId))) {
      opts.log?.info({ jobId, tenant, concurrency: opts.slots.concurrency }, 'tenant at its running-job limit; job waits');
      await job.moveToDelayed(Date.now() + retryDelayMs, token);
      throw new DelayedError();
    }
    const renew = setInterval(() => void opts.slots.acquire(tenant, jobId).catch(() => {}), Math.max(100, opts.slots.leaseMs / 3));
    const rec = await opts.store.get(jobId);
    const startedAt = rec?.startedAt ? Date.parse(rec.startedAt) : Date.now();
    const timeUp = new AbortController();
    const left = startedAt + opts.maxJobMs - Date.now();
    const timer = setTimeout(() => timeUp.abort(TIME_LIMIT_CODE), Math.max(0, left));
    const combined = signal ? AbortSignal.any([signal, timeUp.signal]) : timeUp.signal;
    try {
      return await processor(job, token, combined);
    } catch (err) {
      if (!timeUp.signal.aborted || signal?.aborted) throw err;
      const message = `the job ran out of its ${Math.round(opts.maxJobMs / 1000)} s wall-clock limit (GRAFT_MAX_JOB_SECONDS)`;
      await opts.store.update(jobId, { state: 'failed', phase: null, error: { code: TIME_LIMIT_CODE, message }, finishedAt: new Date().toISOString() }, 'state');
      throw new UnrecoverableError(message);
    } finally {
      clearTimeout(timer);
      clearInterval(renew);
      await opts.slots.release(tenant, jobId).catch(() => {});
    }
  };
}

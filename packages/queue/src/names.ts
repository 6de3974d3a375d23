// Queue and job names, and the defaults every producer uses.
import type { JobsOptions, WorkerOptions } from 'bullmq';

export const TRAIN_QUEUE = 'train';
export const TRAIN_JOB = 'train';

export function trainJobOptions(attempts: number): JobsOptions {
  return {
    attempts,
    backoff: { type: 'exponential', delay: 5_000 },
    removeOnComplete: { age: 7 * 24 * 3600, count: 10_000 },
    removeOnFail: { age: 30 * 24 * 3600, count: 10_000 },
  };
}

/**
 * How a training worker holds its jobs: a lock of lockMs that the worker renews while the job runs, checked for
 * stalls twice per lock; a job whose lock lapsed (its worker died) goes back to the queue, at most 3 times.
 */
export function trainWorkerOptions(lockMs: number): Pick<WorkerOptions, 'lockDuration' | 'stalledInterval' | 'maxStalledCount'> {
  return { lockDuration: lockMs, stalledInterval: Math.max(500, Math.floor(lockMs / 2)), maxStalledCount: 3 };
}

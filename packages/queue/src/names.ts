// Queue and job names, and the defaults every producer uses.
import type { JobsOptions } from 'bullmq';

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

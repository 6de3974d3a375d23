// The training queue as the API sees it: enqueue, cancel, counts. Services use this, never BullMQ directly.
import { Queue } from 'bullmq';
import { isTerminal } from '@graft/contract';
import type { Redis } from 'ioredis';
import { TRAIN_JOB, TRAIN_QUEUE, trainJobOptions } from './names';
import { parseTrainJobPayload, type TrainJobPayload } from './payloads';
import { JobStore, type JobRecord } from './job-store';

export class TrainQueue {
  readonly queue: Queue;
  readonly jobs: JobStore;

  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
    private readonly attempts: number,
  ) {
    this.queue = new Queue(TRAIN_QUEUE, { connection: redis, prefix });
    this.jobs = new JobStore(redis, prefix);
  }

  async enqueue(rec: JobRecord, payload: TrainJobPayload): Promise<void> {
    parseTrainJobPayload(payload);
    await this.jobs.create(rec);
    await this.queue.add(TRAIN_JOB, payload, { ...trainJobOptions(this.attempts), jobId: rec.id });
  }

  /**
   * Cancels a job: a waiting one is removed from the queue at once; a running one is told to stop through
   * the cancel channel that every worker listens to. Answers the state the job is left in.
   */
  async cancel(rec: JobRecord): Promise<'cancelled' | 'cancelling' | 'finished'> {
    if (isTerminal(rec.state)) return 'finished';
    await this.jobs.update(rec.id, { cancelRequested: true });
    const job = await this.queue.getJob(rec.id);
    const state = job ? await job.getState() : 'unknown';
    if (job && (state === 'waiting' || state === 'delayed' || state === 'prioritized' || state === 'waiting-children')) {
      try {
        await job.remove();
        await this.jobs.transition(rec.id, { state: 'cancelled', phase: null, finishedAt: new Date().toISOString() });
        return 'cancelled';
      } catch {
        // Taken by a worker meanwhile: fall through and signal it.
      }
    }
    await this.redis.publish(this.jobs.cancelChannel, JSON.stringify({ jobId: rec.id }));
    if (!job || state === 'completed' || state === 'failed' || state === 'unknown') {
      await this.jobs.transition(rec.id, { state: 'cancelled', phase: null, finishedAt: new Date().toISOString() });
      return 'cancelled';
    }
    return 'cancelling';
  }

  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized');
  }

  async close(): Promise<void> {
    await this.queue.close().catch(() => {});
  }
}

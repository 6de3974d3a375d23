// The worker through outages of its dependencies: while object storage or Redis is down it takes no new jobs (and
// says so); when Redis is back, the locks of the jobs it runs are renewed, set again where they lapsed, and a job
// that went back to the queue meanwhile is stopped here, to resume from its checkpoint in the run that has it.
import type { Redis, Worker } from '@graft/queue';
import type { GraftConfig, Logger } from '@graft/config';
import { formatDuration, type Storage } from '@graft/storage';
import { reclaimJobLock } from '@graft/queue';
import { DependencyMonitor } from './dependency-monitor';
import { LOCK_LOST } from './processor';

export interface OutageGuardDeps {
  worker: Worker;
  redis: Redis;
  storage: Storage;
  config: GraftConfig;
  log: Logger;
  /** The jobs the worker runs, with their lock tokens. */
  running: Map<string, string>;
  stopping: () => boolean;
}

/**
 * Watches storage and Redis, pausing and resuming the worker, and starts the worker once storage has answered
 * (a worker started during an outage takes no job). The worker must be made with `autorun: false`.
 */
export async function guardAgainstOutages(d: OutageGuardDeps): Promise<DependencyMonitor> {
  const { worker, log, running } = d;
  const keepLock = async (jobId: string) => {
    const token = running.get(jobId);
    if (!token) return;
    try {
      if (await reclaimJobLock(d.redis, d.config.queuePrefix, jobId, token, d.config.jobLockMs)) {
        log.info({ jobId }, 'job lock renewed after Redis came back');
      } else if (running.has(jobId)) {
        log.warn({ jobId }, 'job lock lapsed while Redis was away and the job went back to the queue: stopping this run');
        worker.cancelJob(jobId, LOCK_LOST);
      }
    } catch (err) {
      log.warn({ jobId, err: (err as Error).message }, 'could not renew a job lock');
    }
  };
  worker.on('lockRenewalFailed', (jobIds) => jobIds.forEach((id) => void keepLock(id)));

  const monitor = new DependencyMonitor({
    redis: d.redis,
    storage: d.storage,
    onChange: (dependency, state, previousForMs) => {
      const s = state[dependency];
      if (!s.up) {
        log.warn({ dependency, err: s.error }, `${dependency} is down: not taking new jobs until it is back`);
        if (!d.stopping()) void worker.pause(true).catch(() => {});
        return;
      }
      void (async () => {
        if (dependency === 'redis') await Promise.all([...running.keys()].map(keepLock));
        if (!monitor.allUp || d.stopping()) return;
        log.info({ dependency, downFor: formatDuration(previousForMs) }, `${dependency} is back: taking jobs again`);
        await worker.resume();
      })();
    },
  });
  await monitor.checkStorage();
  monitor.start();
  if (monitor.allUp) void worker.run().catch((err) => log.error({ err: err.message }, 'the worker stopped taking jobs'));
  return monitor;
}

// The training worker: takes jobs from the queue, runs each in a training child process, listens for
// cancellations from any API process, and on SIGTERM checkpoints and releases its jobs before exiting. While object
// storage or Redis is down it takes no new jobs; the jobs it runs wait for the dependency to come back.
import { Worker } from 'bullmq';
import { loadConfigOrExit, createLogger } from '@graft/config';
import { formatDuration, Storage } from '@graft/storage';
import { JobStore, TRAIN_QUEUE, createRedis, reclaimJobLock } from '@graft/queue';
import { createProcessor, LOCK_LOST } from './processor';
import { DependencyMonitor } from './dependency-monitor';
import { serveMetrics } from './metrics';

async function main() {
  const config = loadConfigOrExit();
  const log = createLogger(config.logLevel, 'graft-worker');
  const connection = createRedis(config.redisUrl);
  const subscriber = createRedis(config.redisUrl);
  connection.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
  subscriber.on('error', () => {});
  const storage = new Storage(config.s3);
  await storage.ensureBucket().catch((err) => log.warn({ err: err.message }, 'could not ensure the bucket yet'));
  const store = new JobStore(connection, config.queuePrefix);
  let shuttingDown = false;
  const running = new Map<string, string>();

  const worker = new Worker(TRAIN_QUEUE, createProcessor({ config, store, storage, log, shuttingDown: () => shuttingDown, running }), {
    connection,
    prefix: config.queuePrefix,
    concurrency: config.workerConcurrency,
    lockDuration: config.jobLockMs,
    stalledInterval: Math.max(500, Math.floor(config.jobLockMs / 2)),
    maxStalledCount: 3,
    // Started once storage has answered (below): a worker that starts during an outage takes no job.
    autorun: false,
  });
  worker.on('error', (err) => log.warn({ err: err.message }, 'worker error'));
  worker.on('failed', (job, err) => log.info({ jobId: job?.id, err: err.message }, 'job attempt ended with an error'));

  // A lock that lapsed while Redis was away is taken back where the job is still this worker's; otherwise the run
  // stops and the job resumes from its checkpoint wherever it runs next.
  const keepLock = async (jobId: string) => {
    const token = running.get(jobId);
    if (!token) return;
    try {
      if (await reclaimJobLock(connection, config.queuePrefix, jobId, token, config.jobLockMs)) {
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

  // No new jobs while a dependency is down; back to work once all are up (running jobs' locks renewed first).
  const monitor = new DependencyMonitor({
    redis: connection,
    storage,
    onChange: (dependency, state, previousForMs) => {
      const s = state[dependency];
      if (!s.up) {
        log.warn({ dependency, err: s.error }, `${dependency} is down: not taking new jobs until it is back`);
        if (!shuttingDown) void worker.pause(true).catch(() => {});
        return;
      }
      const downFor = formatDuration(previousForMs);
      void (async () => {
        if (dependency === 'redis') await Promise.all([...running.keys()].map(keepLock));
        if (!monitor.allUp || shuttingDown) return;
        log.info({ dependency, downFor }, `${dependency} is back: taking jobs again`);
        await worker.resume();
      })();
    },
  });
  await monitor.checkStorage();
  monitor.start();
  if (monitor.allUp) void worker.run().catch((err) => log.error({ err: err.message }, 'worker stopped'));
  const closeMetrics = serveMetrics(config.workerMetricsPort, config.host, {
    dependencies: () => monitor.state,
    acceptingJobs: () => monitor.allUp && !shuttingDown && !worker.isPaused(),
    runningJobs: () => running.size,
  }, log);

  // Cancellation reaches whichever worker holds the job: every worker listens on one channel.
  await subscriber.subscribe(store.cancelChannel);
  subscriber.on('message', (_ch, message) => {
    try {
      const { jobId } = JSON.parse(message) as { jobId: string };
      if (worker.cancelJob(jobId, 'cancelled')) log.info({ jobId }, 'cancelling job');
    } catch {
      // Not a message of ours.
    }
  });
  log.info({ queue: TRAIN_QUEUE, prefix: config.queuePrefix, concurrency: config.workerConcurrency }, 'worker ready');

  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, 'stopping: no new jobs; running ones checkpoint and go back to the queue');
    const force = setTimeout(() => process.exit(1), 20_000);
    force.unref();
    monitor.stop();
    worker.cancelAllJobs('shutdown');
    await worker.close();
    await closeMetrics();
    subscriber.disconnect();
    await connection.quit().catch(() => {});
    storage.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

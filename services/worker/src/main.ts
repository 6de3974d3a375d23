// The training worker: takes jobs from the queue, runs each in a training child process, listens for
// cancellations from any API process, and on SIGTERM checkpoints and releases its jobs before exiting. While object
// storage or Redis is down it takes no new jobs; the jobs it runs wait for the dependency to come back.
import { loadConfigOrExit, createLogger } from '@graft/config';
import { setHeapGrowth } from '@graft/config/heap';
import { Storage } from '@graft/storage';
import { JobStore, TRAIN_QUEUE, TenantSlots, Worker, createRedis, trainWorkerOptions, withTenantLimits } from '@graft/queue';
import { createProcessor } from './processor';
import { guardAgainstOutages } from './outage-guard';
import { serveMetrics } from './metrics';

/** How often the records of the running jobs are read for a cancel whose message did not arrive. */
const CANCEL_CHECK_MS = 2_000;

async function main() {
  const config = loadConfigOrExit();
  setHeapGrowth(config.heapGrowthPercent);
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

  // Per-tenant running-job limit over all workers, and the wall-clock limit of each job.
  const slots = new TenantSlots(connection, config.queuePrefix, config.jobs.tenantConcurrency, config.jobLockMs * 2);
  const processor = withTenantLimits(createProcessor({ config, store, storage, log, shuttingDown: () => shuttingDown, running }), {
    slots,
    store,
    maxJobMs: config.jobs.maxSeconds * 1000,
    log,
  });
  const worker = new Worker(TRAIN_QUEUE, processor, {
    connection,
    prefix: config.queuePrefix,
    concurrency: config.workerConcurrency,
    ...trainWorkerOptions(config.jobLockMs),
    // Started once storage has answered (below): a worker that starts during an outage takes no job.
    autorun: false,
  });
  worker.on('error', (err) => log.warn({ err: err.message }, 'worker error'));
  worker.on('failed', (job, err) => log.info({ jobId: job?.id, err: err.message }, 'job attempt ended with an error'));

  // No new jobs while storage or Redis is down; locks that lapsed in a Redis outage taken back.
  const monitor = await guardAgainstOutages({ worker, redis: connection, storage, config, log, running, stopping: () => shuttingDown });
  const closeMetrics = serveMetrics(config.workerMetricsPort, config.host, {
    dependencies: () => monitor.state,
    acceptingJobs: () => monitor.allUp && !shuttingDown && !worker.isPaused(),
    runningJobs: () => running.size,
  }, log);

  // Cancellation reaches whichever worker holds the job: every worker listens on one channel. Pub/sub delivers at
  // most once (a message sent while the subscriber reconnects is lost), so the records of the running jobs are read
  // every CANCEL_CHECK_MS as well: a cancel whose message never came stops its job within that time.
  const cancelling = new Set<string>();
  const cancel = (jobId: string, how: string) => {
    if (cancelling.has(jobId) || !worker.cancelJob(jobId, 'cancelled')) return false;
    cancelling.add(jobId);
    log.info({ jobId, how }, 'cancelling job');
    return true;
  };
  await subscriber.subscribe(store.cancelChannel);
  subscriber.on('message', (_ch, message) => {
    try {
      const { jobId } = JSON.parse(message) as { jobId: string };
      if (!cancel(jobId, 'message') && !running.has(jobId)) log.debug({ jobId }, 'a cancel for a job this worker does not run');
    } catch {
      // Not a message of ours.
    }
  });
  const cancelCheck = setInterval(() => {
    for (const id of cancelling) if (!running.has(id)) cancelling.delete(id);
    for (const jobId of running.keys()) {
      if (cancelling.has(jobId)) continue;
      void store.cancelRequested(jobId).then((asked) => asked && cancel(jobId, 'record'), () => {});
    }
  }, CANCEL_CHECK_MS);
  log.info({ queue: TRAIN_QUEUE, prefix: config.queuePrefix, concurrency: config.workerConcurrency }, 'worker ready');

  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, 'stopping: no new jobs; running ones checkpoint and go back to the queue');
    const force = setTimeout(() => process.exit(1), 20_000);
    force.unref();
    monitor.stop();
    clearInterval(cancelCheck);
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

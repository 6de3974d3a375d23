// The BullMQ processor for training jobs. Thin: it forks a training child per attempt, relays its events
// into the job record, and turns the outcome into the job's final state.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { GraftConfig, Logger } from '@graft/config';
import { keys, type Storage } from '@graft/storage';
import { DelayedError, parseTrainJobPayload, PayloadError, UnrecoverableError, type Job, type JobStore, type JobRecord } from '@graft/queue';
import { isTerminal } from '@graft/contract';
import type { ChildMessage, ParentMessage } from './messages';
import { modelIdFor } from './model-id';
import { jobCheckpoints } from './checkpoint-store';

const CHILD = fileURLToPath(new URL('./train-child.ts', import.meta.url));
const KILL_GRACE_MS = 4_000;
/**
 * The abort reason for a job whose lock lapsed while Redis was away and that is no longer this worker's: its run
 * stops without touching the job record, and the job resumes from its checkpoint in the run that has it now.
 */
export const LOCK_LOST = 'lock-lost';

export interface ProcessorDeps {
  config: GraftConfig;
  store: JobStore;
  storage: Storage;
  log: Logger;
  /** Set on SIGTERM: running jobs checkpoint and go back to the queue. */
  shuttingDown: () => boolean;
  /** Filled with the jobs this worker runs now and their lock tokens (to take their locks back after an outage). */
  running?: Map<string, string>;
}

export function createProcessor(deps: ProcessorDeps) {
  const { store, storage, log } = deps;

  return async function processTrainJob(job: Job, token?: string, signal?: AbortSignal): Promise<{ modelId: string }> {
    if (job.id && token) deps.running?.set(job.id, token);
    try {
      return await processJob(job, token, signal);
    } finally {
      if (job.id) deps.running?.delete(job.id);
    }
  };

  async function processJob(job: Job, token: string | undefined, signal: AbortSignal | undefined): Promise<{ modelId: string }> {
    let payload;
    try {
      payload = parseTrainJobPayload(job.data);
    } catch (err) {
      if (!(err instanceof PayloadError)) throw err;
      await failUnreadable(job.data, err.message);
      throw new UnrecoverableError(err.message);
    }
    const jobLog = log.child({ jobId: payload.jobId });
    const rec = await store.get(payload.jobId);
    if (!rec) throw new UnrecoverableError(`job record ${payload.jobId} is missing`);
    if (isTerminal(rec.state)) {
      jobLog.warn({ state: rec.state }, 'job already finished; nothing to do');
      return { modelId: rec.modelId ?? '' };
    }
    if (rec.cancelRequested) {
      await finishCancelled(payload.tenant, payload.jobId);
      throw new UnrecoverableError('cancelled');
    }

    const attempt = await store.nextAttempt(payload.jobId);
    await store.transition(payload.jobId, {
      state: 'running',
      phase: 'preparing',
      attempts: attempt,
      error: null,
      ...(rec.startedAt ? {} : { startedAt: new Date().toISOString() }),
    });
    jobLog.info({ attempt }, 'training started');

    const outcome = await runChild(job, attempt, payload, signal, jobLog);

    // A model published before the lock was found lost still makes the job succeeded (the next run sees that).
    if (signal?.reason === LOCK_LOST && outcome.type !== 'done') {
      jobLog.warn('the job went to another run while Redis was away: this run stopped; the job resumes from its checkpoint');
      throw new Error('the job lock lapsed during a Redis outage');
    }
    if (outcome.type === 'done') {
      const m = outcome.model;
      await store.transition(payload.jobId, {
        state: 'succeeded',
        phase: null,
        progress: 1,
        etaSeconds: 0,
        modelId: m.modelId,
        test: m.test,
        validation: m.validation,
        refit: m.refit,
        finishedAt: new Date().toISOString(),
      });
      jobLog.info({ modelId: m.modelId, test: m.test?.accuracy }, 'training succeeded');
      return { modelId: m.modelId };
    }

    if (outcome.aborted === 'cancelled') {
      await finishCancelled(payload.tenant, payload.jobId);
      throw new UnrecoverableError('cancelled');
    }
    if (outcome.aborted === 'shutdown' || (outcome.code === 'CHILD_EXITED' && deps.shuttingDown())) {
      // Back to the queue without spending an attempt; the next worker resumes from the checkpoint.
      await store.update(payload.jobId, { state: 'queued', phase: null }, 'state');
      await job.moveToDelayed(Date.now() + 1_000, token);
      throw new DelayedError();
    }
    const error = { code: outcome.code, message: outcome.message };
    const attemptsAllowed = job.opts.attempts ?? 1;
    const final = outcome.permanent || job.attemptsMade + 1 >= attemptsAllowed;
    if (final) {
      await finishFailed(payload.jobId, error);
      jobLog.warn({ error }, 'training failed');
      await jobCheckpoints(storage, keys.checkpoint(payload.tenant, payload.jobId)).drop().catch(() => {});
      if (outcome.permanent) throw new UnrecoverableError(outcome.message);
      throw new Error(outcome.message);
    }
    await store.update(payload.jobId, { state: 'queued', phase: null, error }, 'state');
    jobLog.warn({ error, attempt }, 'training attempt failed; it will be retried');
    throw new Error(outcome.message);
  }

  /** A payload this worker cannot read fails its job's record too, where it names one: else it stays queued forever. */
  async function failUnreadable(data: unknown, message: string) {
    const jobId = (data as { jobId?: unknown } | null)?.jobId;
    if (typeof jobId !== 'string') return;
    const rec = await store.get(jobId);
    if (!rec || isTerminal(rec.state)) return;
    const error = { code: 'INVALID_JOB_PAYLOAD' as const, message };
    await finishFailed(jobId, error);
    log.warn({ jobId, error }, 'training failed: its queued payload cannot be read');
  }

  async function finishFailed(jobId: string, error: NonNullable<JobRecord['error']>) {
    await store.transition(jobId, { state: 'failed', phase: null, error, finishedAt: new Date().toISOString() });
  }

  async function finishCancelled(tenant: string, jobId: string) {
    // Partial artifacts go: the model's files (unless its record was published) and the checkpoints.
    // Where storage cannot say whether the record was published, the model's files are kept.
    const modelId = modelIdFor(jobId);
    if (!(await storage.exists(keys.modelRecord(tenant, modelId)).catch(() => true))) {
      await storage.deletePrefix(keys.model(tenant, modelId)).catch(() => {});
    }
    await storage.deletePrefix(keys.job(tenant, jobId)).catch(() => {});
    await store.transition(jobId, { state: 'cancelled', phase: null, finishedAt: new Date().toISOString() });
  }

  function runChild(
    job: Job,
    attempt: number,
    payload: ReturnType<typeof parseTrainJobPayload>,
    signal: AbortSignal | undefined,
    jobLog: Logger,
  ): Promise<Extract<ChildMessage, { type: 'done' }> | (Extract<ChildMessage, { type: 'error' }>)> {
    return new Promise((resolve) => {
      const child: ChildProcess = fork(CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      let settled = false;
      let killTimer: NodeJS.Timeout | undefined;
      let lastProgressWrite = 0;
      let chain: Promise<unknown> = Promise.resolve();
      // Record updates run in order, one after another; none once the job is another run's.
      const enqueue = (f: () => Promise<unknown>) =>
        (chain = chain
          .then(() => (signal?.reason === LOCK_LOST ? undefined : f()))
          .catch((err) => jobLog.warn({ err: err.message }, 'job record update failed')));

      const settle = (m: Extract<ChildMessage, { type: 'done' | 'error' }>) => {
        if (settled) return;
        settled = true;
        clearTimeout(killTimer);
        signal?.removeEventListener('abort', onAbort);
        void chain.then(() => resolve(m));
      };
      const abort = (reason: 'cancelled' | 'shutdown') => {
        if (!child.connected) return;
        child.send({ type: 'abort', reason } satisfies ParentMessage);
        killTimer = setTimeout(() => {
          child.kill('SIGKILL');
          settle({ type: 'error', code: 'ABORTED', message: reason, permanent: false, aborted: reason });
        }, KILL_GRACE_MS);
      };
      // A run that lost its job stops as for a shutdown: the job goes on elsewhere from its checkpoint.
      const onAbort = () => abort(signal?.reason === LOCK_LOST || deps.shuttingDown() ? 'shutdown' : 'cancelled');
      if (signal?.aborted) onAbort();
      signal?.addEventListener('abort', onAbort);

      child.on('message', (m: ChildMessage) => {
        switch (m.type) {
          case 'backend':
            enqueue(() => store.update(payload.jobId, { backend: m.backend }));
            break;
          case 'dataset':
            enqueue(() => store.update(payload.jobId, { dropped: m.dropped }, 'progress'));
            break;
          case 'resumed':
            enqueue(() => store.replaceHistory(payload.jobId, m.history));
            break;
          case 'event': {
            const e = m.event;
            if (e.type === 'epoch') enqueue(() => store.appendHistory(payload.jobId, e.row));
            else if (e.type === 'phase') enqueue(() => store.update(payload.jobId, { phase: e.phase }, 'progress'));
            else if (e.type === 'progress') {
              const now = Date.now();
              if (now - lastProgressWrite < 500 && e.progress < 1) break;
              lastProgressWrite = now;
              const patch: Partial<JobRecord> = {
                phase: e.phase,
                progress: Math.round(e.progress * 1000) / 1000,
                ...(e.epoch !== undefined ? { epoch: e.epoch } : {}),
                ...(e.epochs !== undefined ? { epochs: e.epochs } : {}),
                ...(e.etaSeconds !== undefined ? { etaSeconds: e.etaSeconds === null ? null : Math.round(e.etaSeconds) } : {}),
              };
              enqueue(async () => {
                await store.update(payload.jobId, patch, 'progress');
                await job.updateProgress(patch.progress ?? 0);
              });
            }
            break;
          }
          case 'done':
          case 'error':
            settle(m);
            break;
        }
      });
      child.on('exit', (code, sig) => {
        settle({
          type: 'error',
          code: 'CHILD_EXITED',
          message: `the training process exited unexpectedly (${sig ?? code})`,
          permanent: false,
          aborted: signal?.aborted ? (deps.shuttingDown() ? 'shutdown' : 'cancelled') : undefined,
        });
      });
      child.send({ type: 'start', payload, attempt, config: deps.config } satisfies ParentMessage);
    });
  }
}

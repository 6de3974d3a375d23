// Live job updates: events from GET /v1/jobs/:id/events merged into the job as they arrive, with reconnection.
import { useEffect, useRef } from 'preact/hooks';
import { ApiError, streamEvents } from './api';
import type { SseEvent } from './sse';
import { withEpoch } from './curves';
import { TERMINAL, type HistoryRow, type Job } from './types';

/** The job after one event: `state` and `progress` carry fields of the record, `epoch` one history row. */
export function applyEvent(job: Job, e: SseEvent): Job {
  let data: unknown;
  try {
    data = JSON.parse(e.data);
  } catch {
    return job;
  }
  if (!data || typeof data !== 'object') return job;
  if (e.event === 'epoch') return { ...job, history: withEpoch(job.history ?? [], data as HistoryRow) };
  if (e.event === 'state' || e.event === 'progress') {
    const patch = data as Partial<Job>;
    return { ...job, ...patch, history: patch.history ?? job.history };
  }
  return job;
}

export const isTerminal = (job: Pick<Job, 'state'>) => TERMINAL.includes(job.state);

/**
 * Follows a job's events while `enabled`: calls `onEvent` for each, and `onEnd` once the server has sent the
 * final state and closed the stream. A dropped connection is opened again after a pause; the server starts
 * every stream with a full snapshot of the job, so nothing is lost in between.
 */
export function useJobEvents(jobId: string, enabled: boolean, onEvent: (e: SseEvent) => void, onEnd: () => void) {
  const handlers = useRef({ onEvent, onEnd });
  handlers.current = { onEvent, onEnd };
  useEffect(() => {
    if (!enabled) return;
    const controller = new AbortController();
    let delay = 1000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const connect = async () => {
      try {
        await streamEvents(`/v1/jobs/${jobId}/events`, (e) => {
          delay = 1000;
          handlers.current.onEvent(e);
        }, controller.signal);
        if (!controller.signal.aborted) handlers.current.onEnd();
      } catch (err) {
        if (controller.signal.aborted) return;
        // A key problem or a job that is gone will not mend by retrying.
        if (err instanceof ApiError && (err.status === 401 || err.status === 404)) return;
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, 15_000);
      }
    };
    void connect();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [jobId, enabled]);
}

// A job as the follower knows it: the last snapshot with every live event merged in.
import { TERMINAL_STATES, type HistoryRow, type Job, type JobEventMessage } from './client';

/** The phases that train epochs, in the order the job runs them. */
export function trainingPhases(job: Pick<Job, 'config'>): string[] {
  return job.config?.method === 'fine_tuning' ? ['training_head', 'fine_tuning'] : ['training_head'];
}

export interface PhaseStatus {
  phase: string;
  /** Epochs planned for the phase. */
  planned: number | null;
  /** Epochs finished (history rows of the phase). */
  done: number;
  rows: HistoryRow[];
  /** 'skipped': the job ended before the phase ran. */
  status: 'waiting' | 'running' | 'done' | 'skipped';
  /** Ended before its planned epochs (early stopping). */
  stoppedEarly: boolean;
  /** Ended before its planned epochs because the job failed or was cancelled. */
  interrupted: boolean;
  /** Seconds left in the phase, from the mean epoch time so far. */
  etaSeconds: number | null;
  /** Seconds spent so far. */
  seconds: number;
}

export class JobView {
  job: Job;

  constructor(job: Job) {
    this.job = { ...job, history: [...(job.history ?? [])] };
  }

  get terminal(): boolean {
    return TERMINAL_STATES.includes(this.job.state);
  }

  /** Merges one SSE event; answers what changed, for renderers that print lines. */
  apply(ev: JobEventMessage): { state?: boolean; phase?: boolean; row?: HistoryRow } {
    const before = { state: this.job.state, phase: this.job.phase };
    if (ev.event === 'epoch' && ev.data && typeof ev.data === 'object') {
      const row = ev.data as HistoryRow;
      const i = this.job.history.findIndex((r) => r.phase === row.phase && r.epoch === row.epoch);
      if (i >= 0) this.job.history[i] = row;
      else this.job.history.push(row);
      return { row };
    }
    if ((ev.event === 'state' || ev.event === 'progress') && ev.data && typeof ev.data === 'object') {
      const { history, ...rest } = ev.data as Partial<Job>;
      Object.assign(this.job, rest);
      if (Array.isArray(history)) this.job.history = [...history];
    }
    return { state: before.state !== this.job.state, phase: before.phase !== this.job.phase };
  }

  plannedEpochs(phase: string): number | null {
    const cfg = this.job.config ?? {};
    const planned = phase === 'training_head' ? cfg.featureExtraction?.epochs : phase === 'fine_tuning' ? cfg.fineTuning?.epochs : undefined;
    if (typeof planned === 'number') return planned;
    return this.job.phase === phase ? this.job.epochs : null;
  }

  phases(): PhaseStatus[] {
    const order = trainingPhases(this.job);
    for (const r of this.job.history) if (!order.includes(r.phase)) order.push(r.phase);
    const current = this.job.phase;
    const currentIdx = current ? order.indexOf(current) : -1;
    const laterPhaseRunning = (i: number) =>
      order.slice(i + 1).some((p) => this.job.history.some((r) => r.phase === p)) ||
      currentIdx > i ||
      (current !== null && currentIdx < 0 && ['refitting', 'evaluating', 'exporting'].includes(current));
    return order.map((phase, i) => {
      const rows = this.job.history.filter((r) => r.phase === phase);
      const planned = this.plannedEpochs(phase);
      const seconds = rows.reduce((a, r) => a + (r.seconds || 0), 0);
      const finished = this.terminal ? rows.length > 0 : laterPhaseRunning(i) || (planned !== null && rows.length >= planned);
      const status: PhaseStatus['status'] = finished
        ? 'done'
        : this.terminal
          ? 'skipped'
          : current === phase || rows.length
            ? 'running'
            : 'waiting';
      const left = planned !== null ? Math.max(0, planned - rows.length) : null;
      const etaSeconds = status === 'running' && rows.length && left !== null ? (seconds / rows.length) * left : null;
      return {
        phase,
        planned,
        done: rows.length,
        rows,
        status,
        stoppedEarly:
          status === 'done' && planned !== null && rows.length > 0 && rows.length < planned && this.job.state !== 'cancelled' && this.job.state !== 'failed',
        interrupted:
          status === 'done' && planned !== null && rows.length < planned && (this.job.state === 'cancelled' || this.job.state === 'failed'),
        etaSeconds,
        seconds,
      };
    });
  }
}

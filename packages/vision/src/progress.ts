// Overall progress of a training run across its phases, with an estimate of the time left. Each phase has a
// planned amount of work (roughly in "images through the backbone"); progress is the share of planned work done.
//
// Two things keep the bar honest:
// - A phase that ends before its planned work (early stopping) does not make the bar jump: the phases after it
//   share what is left of the bar from where it stood.
// - The time left is measured per phase: the current phase's remainder at the current phase's own rate, the phases
//   after it at the rate of the phases that ran (preparing, which holds start-up costs, excluded). No estimate is
//   given before a phase has run long enough to have a rate.
import type { HistoryRow, JobPhase } from '@graft/contract';

export type Phase = JobPhase;

export type TrainEvent =
  | { type: 'phase'; phase: Phase }
  | { type: 'progress'; phase: Phase; progress: number; epoch?: number; epochs?: number; etaSeconds?: number | null }
  | { type: 'epoch'; row: HistoryRow };

/** Seconds and share of its work a phase needs before its rate is trusted. */
const MIN_PHASE_SECONDS = 2;
const MIN_PHASE_SHARE = 0.02;

interface PhaseClock {
  phase: Phase;
  /** When the phase started, and when it first reported work: its rate is measured from then. */
  startedAt: number;
  measuredFrom: number | null;
  /** Fraction done at its first report (a phase resumed from a checkpoint starts part-way). */
  startFraction: number;
  fraction: number;
}

export class ProgressTracker {
  private readonly order: Phase[];
  private readonly work: Partial<Record<Phase, number>>;
  private lastEmit = 0;
  private current: PhaseClock | null = null;
  /** Where the bar stood when a phase ended early, and the work done by then: the rest of the bar is scaled after it. */
  private anchor = { progress: 0, work: 0 };
  /** Work units done and seconds spent in finished phases other than preparing, for the rate of phases to come. */
  private measured = { work: 0, seconds: 0 };

  constructor(
    work: Partial<Record<Phase, number>>,
    private readonly emit: (e: TrainEvent) => void,
    /** Minimum milliseconds between two progress events (phase starts and epoch ends always emit). */
    private readonly intervalMs = 250,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.work = { ...work };
    this.order = (Object.keys(work) as Phase[]).filter((p) => (work[p] ?? 0) > 0);
  }

  private get total(): number {
    return this.order.reduce((a, p) => a + this.work[p]!, 0);
  }

  /** Work units done with `fraction` of phase done. */
  private workAt(phase: Phase, fraction: number): number {
    let before = 0;
    for (const p of this.order) {
      if (p === phase) break;
      before += this.work[p]!;
    }
    return before + (this.work[phase] ?? 0) * Math.min(1, Math.max(0, fraction));
  }

  /** Overall progress in [0, 1] with `fraction` of phase done. */
  progressAt(phase: Phase, fraction: number): number {
    const total = this.total;
    if (!total) return 0;
    const done = this.workAt(phase, fraction);
    const { progress, work } = this.anchor;
    if (total <= work) return 1;
    return Math.min(1, Math.max(progress, progress + ((1 - progress) * (done - work)) / (total - work)));
  }

  phase(phase: Phase): void {
    this.closePhase();
    this.current = { phase, startedAt: this.now(), measuredFrom: null, startFraction: 0, fraction: 0 };
    this.emit({ type: 'phase', phase });
    this.update(phase, 0, {}, true);
  }

  /** Books the phase that ends: its time for the rate of later phases, and its unplanned remainder off the bar. */
  private closePhase(): void {
    const c = this.current;
    if (!c) return;
    const planned = this.work[c.phase] ?? 0;
    const seconds = c.measuredFrom === null ? 0 : (this.now() - c.measuredFrom) / 1000;
    if (c.phase !== 'preparing' && planned > 0 && seconds > 0) {
      this.measured.work += planned * (c.fraction - c.startFraction);
      this.measured.seconds += seconds;
    }
    if (planned > 0 && c.fraction < 1) {
      const shown = this.progressAt(c.phase, c.fraction);
      this.work[c.phase] = planned * c.fraction;
      this.anchor = { progress: shown, work: this.workAt(c.phase, 1) };
    }
  }

  update(phase: Phase, fraction: number, extra: { epoch?: number; epochs?: number } = {}, force = false): void {
    const c = this.current;
    if (c?.phase === phase) {
      const f = Math.min(1, Math.max(0, fraction));
      if (c.measuredFrom === null && f > 0) {
        c.measuredFrom = this.now();
        c.startFraction = f;
      }
      c.fraction = f;
    }
    const now = this.now();
    if (!force && now - this.lastEmit < this.intervalMs) return;
    this.lastEmit = now;
    this.emit({ type: 'progress', phase, progress: this.progressAt(phase, fraction), ...extra, etaSeconds: this.eta() });
  }

  /** Seconds left, or null while the current phase has no rate yet. */
  eta(): number | null {
    const c = this.current;
    if (!c) return null;
    const planned = this.work[c.phase] ?? 0;
    const seconds = c.measuredFrom === null ? 0 : (this.now() - c.measuredFrom) / 1000;
    const share = c.fraction - c.startFraction;
    let rate: number | null = null; // work units per second
    if (planned > 0 && seconds >= MIN_PHASE_SECONDS && share >= MIN_PHASE_SHARE) rate = (planned * share) / seconds;
    const later = this.order.slice(this.order.indexOf(c.phase) + 1).reduce((a, p) => a + this.work[p]!, 0);
    const pastRate = this.measured.seconds > 0 && this.measured.work > 0 ? this.measured.work / this.measured.seconds : null;
    const here = planned * (1 - c.fraction);
    if (here + later === 0) return 0;
    // Until the current phase has a rate of its own, the phases that ran stand for it.
    const hereRate = rate ?? pastRate;
    if (hereRate === null) return null;
    return Math.max(0, Math.round(here / hereRate + later / (pastRate ?? hereRate)));
  }

  get phaseNow(): Phase | null {
    return this.current?.phase ?? null;
  }
}

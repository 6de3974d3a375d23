// Overall progress of a training run across its phases, with an estimate of the time left. Each phase has a
// planned amount of work (roughly in "images through the backbone"); progress is the share of planned work done.
import type { HistoryRow } from './fit';

export type Phase = 'preparing' | 'extracting' | 'training_head' | 'fine_tuning' | 'evaluating' | 'exporting';

export type TrainEvent =
  | { type: 'phase'; phase: Phase }
  | { type: 'progress'; phase: Phase; progress: number; epoch?: number; epochs?: number; etaSeconds?: number | null }
  | { type: 'epoch'; row: HistoryRow };

export class ProgressTracker {
  private readonly order: Phase[];
  private readonly started = performance.now();
  private lastEmit = 0;
  private current: Phase | null = null;

  constructor(
    private readonly work: Partial<Record<Phase, number>>,
    private readonly emit: (e: TrainEvent) => void,
    /** Minimum milliseconds between two progress events (phase starts and epoch ends always emit). */
    private readonly intervalMs = 250,
  ) {
    this.order = (Object.keys(work) as Phase[]).filter((p) => (work[p] ?? 0) > 0);
  }

  private get total(): number {
    return this.order.reduce((a, p) => a + this.work[p]!, 0);
  }

  /** Overall progress in [0, 1] with `fraction` of phase done. */
  progressAt(phase: Phase, fraction: number): number {
    const total = this.total;
    if (!total) return 0;
    let before = 0;
    for (const p of this.order) {
      if (p === phase) break;
      before += this.work[p]!;
    }
    const here = (this.work[phase] ?? 0) * Math.min(1, Math.max(0, fraction));
    return Math.min(1, (before + here) / total);
  }

  phase(phase: Phase): void {
    this.current = phase;
    this.emit({ type: 'phase', phase });
    this.update(phase, 0, {}, true);
  }

  update(phase: Phase, fraction: number, extra: { epoch?: number; epochs?: number } = {}, force = false): void {
    const now = performance.now();
    if (!force && now - this.lastEmit < this.intervalMs) return;
    this.lastEmit = now;
    const progress = this.progressAt(phase, fraction);
    const elapsed = (now - this.started) / 1000;
    const etaSeconds = progress >= 0.02 && elapsed >= 1 ? Math.max(0, Math.round((elapsed / progress) * (1 - progress))) : null;
    this.emit({ type: 'progress', phase, progress, ...extra, etaSeconds });
  }

  get phaseNow(): Phase | null {
    return this.current;
  }
}

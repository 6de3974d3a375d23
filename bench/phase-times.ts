// Seconds spent in each phase of a train() run, from the engine's phase events.
import type { Phase, TrainEvent } from '@graft/vision';

export class PhaseTimes {
  readonly seconds: Partial<Record<Phase, number>> = {};
  private phase: Phase | null = null;
  private since = performance.now();

  /** train()'s onEvent: a phase event closes the phase before it. */
  readonly onEvent = (e: TrainEvent): void => {
    if (e.type === 'phase') this.switchTo(e.phase);
  };

  /** Closes the phase running now (call once train() has returned). */
  finish(): Partial<Record<Phase, number>> {
    this.switchTo(null);
    return this.seconds;
  }

  private switchTo(next: Phase | null): void {
    const now = performance.now();
    if (this.phase) this.seconds[this.phase] = (this.seconds[this.phase] ?? 0) + (now - this.since) / 1000;
    this.phase = next;
    this.since = now;
  }
}

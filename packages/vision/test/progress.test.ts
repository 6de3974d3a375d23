// The job's bar and time left across phases, on a clock the test drives.
import { describe, expect, it } from 'vitest';
import { ProgressTracker, type TrainEvent } from '../src/progress';

function tracker(work: ConstructorParameters<typeof ProgressTracker>[0]) {
  let t = 0;
  const events: TrainEvent[] = [];
  const p = new ProgressTracker(work, (e) => events.push(e), 0, () => t);
  const progress = () => events.filter((e) => e.type === 'progress') as Extract<TrainEvent, { type: 'progress' }>[];
  const last = () => progress().at(-1)!;
  return { p, last, progress, advance: (seconds: number) => (t += seconds * 1000) };
}

describe('ProgressTracker', () => {
  it('keeps the bar where it stood when a phase stops early, and lets the later phases fill the rest', () => {
    const { p, last, progress, advance } = tracker({ training_head: 100, evaluating: 10, exporting: 10 });
    p.phase('training_head');
    advance(5);
    p.update('training_head', 0.5);
    const atStop = last().progress;
    expect(atStop).toBeCloseTo(50 / 120, 6);
    p.phase('evaluating');
    expect(last().progress).toBeCloseTo(atStop, 6);
    p.update('evaluating', 0.5);
    expect(last().progress).toBeCloseTo(atStop + (1 - atStop) * 0.25, 6);
    p.phase('exporting');
    p.update('exporting', 1, {}, true);
    expect(last().progress).toBe(1);
    const shown = progress().map((e) => e.progress);
    expect(shown).toEqual([...shown].sort((a, b) => a - b));
  });

  it('gives no time left until the phase has a rate, and then the time the work takes at the rates measured', () => {
    const { p, last, advance } = tracker({ preparing: 10, extracting: 100, training_head: 100 });
    p.phase('preparing');
    advance(30); // loading models: slow, and not what later phases cost
    p.update('preparing', 1);
    p.phase('extracting');
    expect(last().etaSeconds).toBeNull();
    advance(0.5);
    p.update('extracting', 0.01);
    expect(last().etaSeconds).toBeNull();
    // 10 units a second from here on: 99 units of extraction and 100 of training left after the first report.
    for (let s = 1; s <= 4; s++) {
      advance(1);
      p.update('extracting', 0.01 + 0.1 * s);
    }
    expect(last().etaSeconds).toBe(Math.round((100 * (1 - 0.41)) / 10 + 100 / 10));
    // The later phase's rate comes from the phases that ran, not from the start-up.
    advance(1);
    p.update('extracting', 0.51);
    advance(4.9);
    p.update('extracting', 1);
    p.phase('training_head');
    expect(last().etaSeconds).toBe(10);
  });

  it('never says less time is left than the current phase needs at its own rate', () => {
    const { p, last, advance } = tracker({ extracting: 10, fine_tuning: 100, exporting: 1 });
    p.phase('extracting');
    p.update('extracting', 0.1);
    advance(1);
    p.update('extracting', 1);
    p.phase('fine_tuning'); // fast extraction must not make slow fine-tuning look short
    p.update('fine_tuning', 0.01);
    advance(10);
    p.update('fine_tuning', 0.11);
    const phaseLeft = (100 * 0.89) / 1; // 1 unit a second
    expect(last().etaSeconds).toBeGreaterThanOrEqual(Math.round(phaseLeft));
  });
});

// The training history as curve data: one point per epoch, phases in the order they ran, and for an epoch that
// more than one attempt ran (a job resumed after a crash) the row of the latest attempt.
import type { HistoryRow } from './types';

export interface PhaseSpan {
  phase: string;
  /** 1-based x positions of the phase's first and last epoch on the curve. */
  from: number;
  to: number;
}

export interface CurveData {
  x: number[];
  loss: (number | null)[];
  valLoss: (number | null)[];
  accuracy: (number | null)[];
  valAccuracy: (number | null)[];
  phases: PhaseSpan[];
  rows: HistoryRow[];
}

const PHASE_ORDER = ['training_head', 'fine_tuning'];

const finite = (v: number | null | undefined) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export function curveData(history: HistoryRow[]): CurveData {
  const latest = new Map<string, HistoryRow>();
  const firstSeen = new Map<string, number>();
  history.forEach((r, i) => {
    if (!firstSeen.has(r.phase)) firstSeen.set(r.phase, i);
    const k = `${r.phase}\u0000${r.epoch}`;
    const prev = latest.get(k);
    if (!prev || r.attempt >= prev.attempt) latest.set(k, r);
  });
  const rank = (p: string) => {
    const known = PHASE_ORDER.indexOf(p);
    return known >= 0 ? known : PHASE_ORDER.length + (firstSeen.get(p) ?? 0);
  };
  const rows = [...latest.values()].sort((a, b) => rank(a.phase) - rank(b.phase) || a.epoch - b.epoch);
  const phases: PhaseSpan[] = [];
  rows.forEach((r, i) => {
    const last = phases.at(-1);
    if (last && last.phase === r.phase) last.to = i + 1;
    else phases.push({ phase: r.phase, from: i + 1, to: i + 1 });
  });
  return {
    x: rows.map((_, i) => i + 1),
    loss: rows.map((r) => finite(r.loss)),
    valLoss: rows.map((r) => finite(r.valLoss)),
    accuracy: rows.map((r) => finite(r.accuracy)),
    valAccuracy: rows.map((r) => finite(r.valAccuracy)),
    phases,
    rows,
  };
}

/** Appends an epoch row to a history, replacing a row of the same phase, epoch and attempt. */
export function withEpoch(history: HistoryRow[], row: HistoryRow): HistoryRow[] {
  const rest = history.filter((r) => !(r.phase === row.phase && r.epoch === row.epoch && r.attempt === row.attempt));
  return [...rest, row];
}

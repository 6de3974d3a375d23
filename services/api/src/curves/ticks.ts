// Axis ranges with round tick values, and tick labels printed with as many decimals as the step needs.

export interface Axis {
  lo: number;
  hi: number;
  step: number;
  ticks: number[];
}

/** A step of 1, 2 or 5 times a power of ten, close to span / count. */
export function niceStep(span: number, count: number): number {
  if (!(span > 0) || !Number.isFinite(span)) return 1;
  const raw = span / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  // Round to the nearest of 1, 2, 5, 10 on a log scale.
  return (m >= Math.sqrt(50) ? 10 : m >= Math.sqrt(10) ? 5 : m >= Math.sqrt(2) ? 2 : 1) * p;
}

/** A range that holds [lo, hi], widened to multiples of a nice step, with about `count` intervals. */
export function niceAxis(lo: number, hi: number, count = 5): Axis {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const pad = Math.abs(hi) > 0 ? Math.abs(hi) * 0.1 : 1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo, count);
  const nlo = Math.floor(lo / step + 1e-9) * step;
  const nhi = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = nlo; v <= nhi + step * 1e-6; v += step) ticks.push(round(v, step));
  return { lo: round(nlo, step), hi: round(nhi, step), step, ticks };
}

/** Integer ticks for epochs 1…n, at most about `count` of them. */
export function epochTicks(n: number, count = 8): number[] {
  const step = Math.max(1, niceStep(Math.max(1, n - 1), count));
  const out: number[] = [];
  for (let v = step >= 2 ? step : 1; v <= n; v += step) out.push(v);
  if (step >= 5) out.unshift(1);
  return out;
}

/** Decimals needed to print multiples of `step` exactly. */
export function decimalsFor(step: number): number {
  if (!(step > 0) || step >= 1) return 0;
  return Math.min(6, Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
}

export function formatTick(v: number, step: number): string {
  return v.toFixed(decimalsFor(step));
}

function round(v: number, step: number): number {
  const d = decimalsFor(step) + 2;
  return Number(v.toFixed(d));
}

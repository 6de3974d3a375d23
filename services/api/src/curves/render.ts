// The training curves of a job as a standalone SVG picture: loss and accuracy side by side, train and validation
// series over the epochs of every phase in order, with a dashed marker where each later phase (fine-tuning) starts.
import { el, esc, n, text } from './svg';
import { epochTicks, formatTick, niceAxis, type Axis } from './ticks';

/** One epoch of the history, as the job record holds it. */
export interface CurvePoint {
  phase: string;
  loss: number | null;
  accuracy: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
}

export interface CurvesChart {
  title: string;
  subtitle?: string;
  history: readonly CurvePoint[];
  /** Pixels; default 960 x 420. */
  width?: number;
  height?: number;
  /** Shown in each panel when there is no epoch to draw. */
  emptyMessage?: string;
}

type Metric = 'loss' | 'accuracy';
type Key = 'loss' | 'accuracy' | 'valLoss' | 'valAccuracy';

export interface SeriesSpec {
  /** `data-series` of the series' group in the SVG. */
  id: string;
  panel: Metric;
  key: Key;
  label: string;
  color: string;
  dash?: string;
}

export const SERIES: readonly SeriesSpec[] = [
  { id: 'train-loss', panel: 'loss', key: 'loss', label: 'train', color: '#1f77b4' },
  { id: 'val-loss', panel: 'loss', key: 'valLoss', label: 'validation', color: '#e4572e', dash: '6 3' },
  { id: 'train-accuracy', panel: 'accuracy', key: 'accuracy', label: 'train', color: '#1f77b4' },
  { id: 'val-accuracy', panel: 'accuracy', key: 'valAccuracy', label: 'validation', color: '#e4572e', dash: '6 3' },
];

const FONT = "'DejaVu Sans', 'Helvetica Neue', Helvetica, Arial, sans-serif";
const INK = '#222';
const MUTED = '#666';
const GRID = '#e6e6e6';
const AXIS = '#888';
const MARKER = '#7a7a7a';
const LATER_PHASE_FILL = '#f4f7fb';

const PHASE_NAMES: Record<string, string> = { training_head: 'training the head', fine_tuning: 'fine-tuning' };
export const phaseName = (p: string) => PHASE_NAMES[p] ?? p.replace(/_/g, ' ');

/** Rough width of a string in DejaVu Sans at `size` px, for laying out legends and labels. */
const textWidth = (s: string, size: number) => s.length * size * 0.6;

const finite = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

/** Where each phase after the first starts: the 0-based index of its first epoch. */
export function phaseStarts(history: readonly CurvePoint[]): { index: number; phase: string }[] {
  const out: { index: number; phase: string }[] = [];
  history.forEach((row, i) => {
    if (i > 0 && row.phase !== history[i - 1]!.phase) out.push({ index: i, phase: row.phase });
  });
  return out;
}

/** Runs of consecutive finite values as [epochIndex, value] pairs; a missing value breaks the line. */
export function segments(history: readonly CurvePoint[], key: Key): [number, number][][] {
  const out: [number, number][][] = [];
  let run: [number, number][] = [];
  history.forEach((row, i) => {
    const v = row[key];
    if (finite(v)) run.push([i, v]);
    else if (run.length) {
      out.push(run);
      run = [];
    }
  });
  if (run.length) out.push(run);
  return out;
}

function valueAxis(metric: Metric, history: readonly CurvePoint[]): Axis {
  const values = SERIES.filter((s) => s.panel === metric).flatMap((s) => history.map((r) => r[s.key]).filter(finite));
  if (metric === 'accuracy') {
    if (!values.length) return niceAxis(0, 1, 5);
    const lo = Math.max(0, Math.min(0.8, Math.floor(Math.min(...values) * 10) / 10));
    return niceAxis(lo, Math.max(1, Math.max(...values)), 5);
  }
  if (!values.length) return niceAxis(0, 1, 5);
  return niceAxis(Math.min(0, ...values), Math.max(...values), 5);
}

interface Box {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function panel(
  metric: Metric,
  box: Box,
  history: readonly CurvePoint[],
  emptyMessage: string,
): string {
  const parts: string[] = [];
  const epochs = history.length;
  const yAxis = valueAxis(metric, history);
  // Epoch i (0-based) sits at i + 1; the domain has half an epoch of room at each end.
  const x0 = 0.5;
  const x1 = Math.max(epochs, 1) + 0.5;
  const sx = (e: number) => box.left + ((e - x0) / (x1 - x0)) * (box.right - box.left);
  const sy = (v: number) => box.bottom - ((v - yAxis.lo) / (yAxis.hi - yAxis.lo)) * (box.bottom - box.top);
  const title = metric === 'loss' ? 'Loss' : 'Accuracy';

  parts.push(text(box.left, box.top - 12, title, { 'font-size': 14, 'font-weight': 'bold', fill: INK }));
  const last = SERIES.filter((s) => s.panel === metric)
    .map((s) => {
      const v = [...history].reverse().map((r) => r[s.key]).find(finite);
      return v === undefined ? null : `${s.label === 'train' ? 'train' : 'val'} ${v.toFixed(3)}`;
    })
    .filter((s): s is string => !!s);
  if (last.length) {
    parts.push(text(box.right, box.top - 12, `last: ${last.join(' · ')}`, { 'font-size': 11, fill: MUTED, 'text-anchor': 'end' }));
  }

  // Later phases on a tinted background, each start marked with a dashed line.
  const starts = phaseStarts(history);
  starts.forEach((s, k) => {
    const xs = sx(s.index + 0.5);
    const xe = k + 1 < starts.length ? sx(starts[k + 1]!.index + 0.5) : box.right;
    parts.push(el('rect', { x: xs, y: box.top, width: Math.max(0, xe - xs), height: box.bottom - box.top, fill: LATER_PHASE_FILL }));
  });

  // Grid and y ticks.
  for (const t of yAxis.ticks) {
    const y = sy(t);
    parts.push(el('line', { x1: box.left, x2: box.right, y1: y, y2: y, stroke: GRID, 'stroke-width': 1 }));
    parts.push(text(box.left - 6, y + 4, formatTick(t, yAxis.step), { 'font-size': 11, fill: MUTED, 'text-anchor': 'end' }));
  }
  // x ticks at whole epochs, numbered across phases.
  if (epochs > 0) {
    for (const e of epochTicks(epochs)) {
      const x = sx(e);
      parts.push(el('line', { x1: x, x2: x, y1: box.bottom, y2: box.bottom + 4, stroke: AXIS }));
      parts.push(text(x, box.bottom + 17, String(e), { 'font-size': 11, fill: MUTED, 'text-anchor': 'middle' }));
    }
  }
  parts.push(
    el('path', {
      d: `M${n(box.left)} ${n(box.top)}V${n(box.bottom)}H${n(box.right)}`,
      fill: 'none',
      stroke: AXIS,
      'stroke-width': 1,
    }),
  );
  parts.push(text((box.left + box.right) / 2, box.bottom + 34, 'epoch', { 'font-size': 12, fill: MUTED, 'text-anchor': 'middle' }));
  const ymid = (box.top + box.bottom) / 2;
  parts.push(
    text(box.left - 40, ymid, metric, {
      'font-size': 12,
      fill: MUTED,
      'text-anchor': 'middle',
      transform: `rotate(-90 ${n(box.left - 40)} ${n(ymid)})`,
    }),
  );

  for (const s of starts) {
    const x = sx(s.index + 0.5);
    parts.push(
      el('line', { class: 'phase-marker', 'data-phase': s.phase, x1: x, x2: x, y1: box.top, y2: box.bottom, stroke: MARKER, 'stroke-width': 1.5, 'stroke-dasharray': '5 4' }),
    );
    const label = `${phaseName(s.phase)} starts`;
    const flip = x + 6 + textWidth(label, 11) > box.right;
    parts.push(text(flip ? x - 5 : x + 5, box.top + 14, label, { 'font-size': 11, fill: MARKER, 'text-anchor': flip ? 'end' : 'start' }));
  }

  if (epochs === 0) {
    parts.push(text((box.left + box.right) / 2, ymid, emptyMessage, { 'font-size': 14, fill: MUTED, 'text-anchor': 'middle', 'font-style': 'italic' }));
  }

  const dots = epochs <= 60;
  for (const s of SERIES.filter((x) => x.panel === metric)) {
    const runs = segments(history, s.key);
    if (!runs.length) continue;
    const g: string[] = [];
    for (const run of runs) {
      g.push(
        el('polyline', {
          points: run.map(([i, v]) => `${n(sx(i + 1))},${n(sy(v))}`).join(' '),
          fill: 'none',
          stroke: s.color,
          'stroke-width': 2,
          'stroke-dasharray': s.dash,
          'stroke-linejoin': 'round',
          'stroke-linecap': 'round',
        }),
      );
      if (dots) for (const [i, v] of run) g.push(el('circle', { cx: sx(i + 1), cy: sy(v), r: 2.5, fill: s.color }));
    }
    parts.push(el('g', { class: 'series', 'data-series': s.id }, g));
  }
  return el('g', { class: 'panel', 'data-panel': metric }, parts);
}

function legend(right: number, y: number, withMarker: boolean): string {
  const items: { label: string; swatch: (x: number) => string }[] = [
    {
      label: 'train',
      swatch: (x) => el('line', { x1: x, x2: x + 24, y1: y - 4, y2: y - 4, stroke: SERIES[0]!.color, 'stroke-width': 2 }),
    },
    {
      label: 'validation',
      swatch: (x) =>
        el('line', { x1: x, x2: x + 24, y1: y - 4, y2: y - 4, stroke: SERIES[1]!.color, 'stroke-width': 2, 'stroke-dasharray': SERIES[1]!.dash }),
    },
  ];
  if (withMarker) {
    items.push({
      label: 'phase start',
      swatch: (x) => el('line', { x1: x + 12, x2: x + 12, y1: y - 12, y2: y + 4, stroke: MARKER, 'stroke-width': 1.5, 'stroke-dasharray': '5 4' }),
    });
  }
  const widths = items.map((it) => 24 + 6 + textWidth(it.label, 12));
  const gap = 18;
  let x = right - widths.reduce((a, b) => a + b, 0) - gap * (items.length - 1);
  const out: string[] = [];
  items.forEach((it, k) => {
    out.push(it.swatch(x), text(x + 30, y, it.label, { 'font-size': 12, fill: INK }));
    x += widths[k]! + gap;
  });
  return el('g', { class: 'legend' }, out);
}

/** The chart as a complete SVG document. */
export function renderCurves(chart: CurvesChart): string {
  const W = Math.round(chart.width ?? 960);
  const H = Math.round(chart.height ?? 420);
  const pad = 16;
  const history = chart.history;
  const headerBottom = chart.subtitle ? 54 : 34;
  const legendY = headerBottom + 16;
  const top = legendY + 36;
  const bottom = H - 46;
  const half = (W - 2 * pad) / 2;
  const box = (i: number): Box => ({ left: pad + i * half + 58, right: pad + (i + 1) * half - 16, top, bottom });

  const body = [
    el('rect', { x: 0, y: 0, width: W, height: H, fill: '#fff' }),
    text(pad, 28, chart.title, { 'font-size': 17, 'font-weight': 'bold', fill: INK }),
    chart.subtitle ? text(pad, 48, chart.subtitle, { 'font-size': 12, fill: MUTED }) : '',
    legend(W - pad - 16, legendY, phaseStarts(history).length > 0),
    panel('loss', box(0), history, chart.emptyMessage ?? 'no epochs yet'),
    panel('accuracy', box(1), history, chart.emptyMessage ?? 'no epochs yet'),
  ];
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    el(
      'svg',
      {
        xmlns: 'http://www.w3.org/2000/svg',
        width: W,
        height: H,
        viewBox: `0 0 ${W} ${H}`,
        'font-family': FONT,
        role: 'img',
      },
      [el('title', {}, esc(chart.subtitle ? `${chart.title}: ${chart.subtitle}` : chart.title)), ...body],
    ) +
    '\n'
  );
}

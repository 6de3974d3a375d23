// Loss and accuracy curves (training and validation) drawn with uPlot, with the training phases shaded.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { CurveData } from '../curves';
import { phaseName } from '../format';

export const TRAIN_COLOR = '#2563eb';
export const VAL_COLOR = '#ea580c';
const PHASE_FILLS = ['rgba(100, 116, 139, 0.07)', 'rgba(124, 58, 237, 0.08)', 'rgba(13, 148, 136, 0.08)'];
const HEIGHT = 260;

type Metric = 'loss' | 'accuracy';

/** Shades each phase's epochs, marks where a phase begins, and names the phases in the strip above the plot. */
function drawPhases(u: uPlot, data: CurveData) {
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  const dpr = devicePixelRatio || 1;
  ctx.save();
  data.phases.forEach((p, i) => {
    const x0 = Math.max(left, u.valToPos(p.from - 0.5, 'x', true));
    const x1 = Math.min(left + width, u.valToPos(p.to + 0.5, 'x', true));
    ctx.fillStyle = PHASE_FILLS[i % PHASE_FILLS.length]!;
    ctx.fillRect(x0, top, x1 - x0, height);
    if (i > 0) {
      ctx.strokeStyle = 'rgba(71, 85, 105, 0.5)';
      ctx.lineWidth = dpr;
      ctx.setLineDash([4 * dpr, 3 * dpr]);
      ctx.beginPath();
      ctx.moveTo(Math.round(x0) + 0.5, top - 16 * dpr);
      ctx.lineTo(Math.round(x0) + 0.5, top + height);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.fillStyle = '#64748b';
    ctx.textAlign = 'left';
    ctx.textBaseline = 'bottom';
    ctx.font = `600 ${11 * dpr}px system-ui, -apple-system, "Segoe UI", sans-serif`;
    const label = phaseName(p.phase);
    if (ctx.measureText(label).width < x1 - x0 - 8 * dpr) ctx.fillText(label, x0 + 5 * dpr, top - 5 * dpr);
  });
  ctx.restore();
}

const format = (metric: Metric, v: number | null | undefined) =>
  v === null || v === undefined ? '–' : metric === 'accuracy' ? `${(v * 100).toFixed(1)}%` : v.toFixed(4);

/** Tick labels with as many decimals as the tick spacing needs, the same for every tick. */
function tickValues(metric: Metric, ticks: number[]): string[] {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : 1;
  const scale = metric === 'accuracy' ? 100 : 1;
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step * scale) + 1e-9)));
  return ticks.map((t) => (metric === 'accuracy' ? `${(t * 100).toFixed(decimals)}%` : t.toFixed(decimals)));
}

function series(): uPlot.Series[] {
  const points = { size: 5, width: 1.5, fill: '#fff' };
  return [
    {},
    { label: 'Training', stroke: TRAIN_COLOR, width: 2, points: { ...points, stroke: TRAIN_COLOR } },
    { label: 'Validation', stroke: VAL_COLOR, width: 2, points: { ...points, stroke: VAL_COLOR } },
  ];
}

/** The values at one epoch, for the line under the chart's title. */
function readout(data: CurveData, metric: Metric, i: number | null | undefined): string {
  const idx = i ?? data.x.length - 1;
  const row = data.rows[idx];
  if (!row) return '';
  const [train, val] = metric === 'loss' ? [data.loss[idx], data.valLoss[idx]] : [data.accuracy[idx], data.valAccuracy[idx]];
  const where = `${i === null || i === undefined ? 'last epoch' : `epoch ${row.epoch}`}${data.phases.length > 1 ? ` of ${phaseName(row.phase).toLowerCase()}` : ''}`;
  return `${where}: training ${format(metric, train)}, validation ${format(metric, val)}`;
}

function plotData(data: CurveData, metric: Metric): uPlot.AlignedData {
  return metric === 'loss' ? [data.x, data.loss, data.valLoss] : [data.x, data.accuracy, data.valAccuracy];
}

export function CurvesChart({ data, metric, title }: { data: CurveData; metric: Metric; title: string }) {
  const host = useRef<HTMLDivElement>(null);
  const info = useRef<HTMLSpanElement>(null);
  const plot = useRef<uPlot | null>(null);
  const current = useRef(data);
  current.current = data;

  useEffect(() => {
    const el = host.current;
    // The chart's element is gone when the page was replaced before this effect ran.
    if (!el) return;
    const axis: uPlot.Axis = { stroke: '#64748b', grid: { stroke: 'rgba(148, 163, 184, 0.25)', width: 1 }, ticks: { show: false } };
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: HEIGHT,
      // Room above the plot for the phase names.
      padding: [22, 8, 0, 0],
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      legend: { show: false },
      scales: {
        x: { time: false, range: (_u, _min, _max) => [0.5, Math.max(1, current.current.x.length) + 0.5] },
        y: {
          range: (_u, min, max) => {
            if (metric === 'accuracy') {
              const lo = Number.isFinite(min) ? Math.max(0, Math.floor((min - 0.02) * 10) / 10) : 0;
              return [Math.min(lo, 0.5), 1];
            }
            const hi = Number.isFinite(max) ? max * 1.08 : 1;
            return [0, hi > 0 ? hi : 1];
          },
        },
      },
      axes: [
        { ...axis, label: 'epoch', labelSize: 18, size: 36, incrs: [1, 2, 5, 10, 20, 50, 100], values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : '')) },
        { ...axis, size: 52, values: (_u, ticks) => tickValues(metric, ticks) },
      ],
      series: series(),
      hooks: {
        drawClear: [(u) => drawPhases(u, current.current)],
        setCursor: [(u) => void (info.current && (info.current.textContent = readout(current.current, metric, u.cursor.idx)))],
      },
    };
    const u = new uPlot(opts, plotData(current.current, metric), el);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      const w = Math.max(280, el.clientWidth);
      if (Math.abs(w - u.width) > 1) u.setSize({ width: w, height: HEIGHT });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [metric]);

  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    // uPlot shows the point markers by itself while they are far enough apart to be told apart.
    u.setData(plotData(data, metric), true);
    if (info.current) info.current.textContent = readout(data, metric, u.cursor.idx);
  }, [data, metric]);

  return (
    <figure class="chart" data-metric={metric} data-points={data.x.length}>
      <figcaption>
        <span class="chart-title">{title}</span>
        <span ref={info} class="chart-readout">
          {readout(data, metric, null)}
        </span>
      </figcaption>
      <div ref={host} class="chart-host" />
    </figure>
  );
}

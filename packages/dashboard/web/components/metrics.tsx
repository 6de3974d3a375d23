// Evaluation results: the confusion matrix (rows the true class, columns the predicted one), per-class
// precision, recall and F1, and the reliability diagram (accuracy against confidence, before and after calibration).
import type { Calibration, DetailedMetrics, ReliabilityBin } from '../types';
import { pct } from '../format';
import { Meter } from './ui';

export function ConfusionMatrix({ metrics, onCell }: { metrics: DetailedMetrics; onCell?: (row: number, col: number) => void }) {
  const { labels, confusionMatrix: cm } = metrics;
  return (
    <div class="cm-wrap">
      <table class="cm" aria-label="Confusion matrix">
        <thead>
          <tr>
            <th class="cm-corner">
              <span class="cm-axis-true">true ↓</span>
              <span class="cm-axis-pred">predicted →</span>
            </th>
            {labels.map((l) => (
              <th scope="col" class="cm-col" title={l}>
                {l}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {cm.map((row, r) => {
            const total = row.reduce((a, b) => a + b, 0);
            return (
              <tr>
                <th scope="row" class="cm-row" title={labels[r]}>
                  {labels[r]}
                </th>
                {row.map((n, c) => {
                  const share = total ? n / total : 0;
                  const diag = r === c;
                  const hue = diag ? '37, 99, 235' : '220, 38, 38';
                  return (
                    <td
                      class={`cm-cell ${share > 0.55 ? 'cm-dark' : ''} ${onCell && n ? 'cm-link' : ''}`}
                      data-row={r}
                      data-col={c}
                      style={{ background: n ? `rgba(${hue}, ${(0.08 + share * 0.82).toFixed(3)})` : undefined }}
                      title={`true ${labels[r]}, predicted ${labels[c]}: ${n} (${pct(share)} of ${labels[r]})`}
                      onClick={onCell && n ? () => onCell(r, c) : undefined}
                    >
                      {n}
                    </td>
                  );
                })}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

export function PerClassTable({ metrics }: { metrics: DetailedMetrics }) {
  return (
    <table class="table per-class">
      <thead>
        <tr>
          <th>Class</th>
          <th>Precision</th>
          <th>Recall</th>
          <th>F1</th>
          <th class="num">Support</th>
        </tr>
      </thead>
      <tbody>
        {metrics.labels.map((l) => {
          const m = metrics.perClass[l];
          if (!m) return null;
          return (
            <tr data-class={l}>
              <td class="strong">{l}</td>
              <td>
                <Meter value={m.precision} text={pct(m.precision)} />
              </td>
              <td>
                <Meter value={m.recall} text={pct(m.recall)} />
              </td>
              <td>
                <Meter value={m.f1} text={pct(m.f1)} tone="green" />
              </td>
              <td class="num">{m.support}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

const SIDE = 220;

function bars(bins: ReliabilityBin[], colour: string, offset: number) {
  const w = SIDE / bins.length;
  return bins.map((b, i) =>
    b.accuracy === null ? null : (
      <rect x={i * w + offset} y={SIDE - b.accuracy * SIDE} width={w / 2 - 1} height={b.accuracy * SIDE} fill={colour}>
        <title>{`confidence ${pct(b.from)}-${pct(b.to)}: ${b.count} images, accuracy ${pct(b.accuracy)}, mean confidence ${pct(b.confidence ?? 0)}`}</title>
      </rect>
    ),
  );
}

/** Accuracy per confidence bin, before (grey) and after (blue) calibration, against the diagonal of perfect calibration. */
export function ReliabilityDiagram({ calibration: c }: { calibration: Calibration }) {
  const w = SIDE / c.reliability.length;
  return (
    <figure class="reliability">
      <svg viewBox={`-4 -4 ${SIDE + 8} ${SIDE + 8}`} width={SIDE} height={SIDE} role="img" aria-label="Reliability diagram">
        <rect x={0} y={0} width={SIDE} height={SIDE} fill="none" stroke="#cbd5e1" />
        <line x1={0} y1={SIDE} x2={SIDE} y2={0} stroke="#94a3b8" stroke-dasharray="4 3" />
        {bars(c.reliability, '#94a3b8', 0)}
        {bars(c.calibratedReliability, '#2563eb', w / 2)}
      </svg>
      <figcaption class="muted small">
        Accuracy by confidence: grey as trained (ECE {pct(c.ece)}), blue calibrated with temperature {c.temperature.toFixed(2)} (ECE{' '}
        {pct(c.calibratedEce)}). Bars on the dashed line are perfectly calibrated.
      </figcaption>
    </figure>
  );
}

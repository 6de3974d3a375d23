// Evaluation results: the confusion matrix (rows the true class, columns the predicted one) and per-class
// precision, recall and F1.
import type { DetailedMetrics } from '../types';
import { pct } from '../format';
import { Meter } from './ui';

export function ConfusionMatrix({ metrics }: { metrics: DetailedMetrics }) {
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
                      class={`cm-cell ${share > 0.55 ? 'cm-dark' : ''}`}
                      data-row={r}
                      data-col={c}
                      style={{ background: n ? `rgba(${hue}, ${(0.08 + share * 0.82).toFixed(3)})` : undefined }}
                      title={`true ${labels[r]}, predicted ${labels[c]}: ${n} (${pct(share)} of ${labels[r]})`}
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

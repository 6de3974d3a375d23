// Jobs, metrics and datasets printed for people.
import { keptRow } from '@graft/contract';
import type { Dataset, DatasetHealth, EvalMetrics, HistoryRow, Job } from './client';
import { bytes, cli, duration, num, type Out, paintState, pct, phaseName, plural, table, when } from './output';

const elapsed = (job: Job) =>
  job.startedAt ? (Date.parse(job.finishedAt ?? new Date().toISOString()) - Date.parse(job.startedAt)) / 1000 : null;

/** Loss, accuracy, and where there are labels, the confusion matrix and per-class precision, recall and F1. */
export function metricsText(title: string, m: EvalMetrics): string {
  let s = `${title}: accuracy ${pct(m.accuracy)}  loss ${num(m.loss)}\n`;
  const c = m.calibration;
  if (c) s += `  calibration error ${pct(c.ece)} as trained, ${pct(c.calibratedEce)} calibrated (temperature ${num(c.temperature, 3)})\n`;
  const labels = m.labels ?? (m.perClass ? Object.keys(m.perClass) : []);
  if (m.confusionMatrix?.length && labels.length === m.confusionMatrix.length) {
    s += '\n  confusion matrix (rows: true class, columns: predicted)\n';
    const rows = m.confusionMatrix.map((r, i) => [labels[i]!, ...r.map(String)]);
    s += indent(table(['', ...labels], rows, { align: ['left', ...labels.map(() => 'right' as const)] }), 4);
  }
  if (m.perClass && Object.keys(m.perClass).length) {
    s += '\n';
    const rows = Object.entries(m.perClass).map(([label, c]) => [label, num(c.precision, 3), num(c.recall, 3), num(c.f1, 3), String(c.support)]);
    s += indent(table(['class', 'precision', 'recall', 'f1', 'support'], rows, { align: ['left', 'right', 'right', 'right', 'right'] }), 2);
  }
  return s;
}

const indent = (s: string, n: number) =>
  s
    .split('\n')
    .map((l) => (l ? ' '.repeat(n) + l : l))
    .join('\n');

/**
 * The epoch whose weights the model kept (keptRow: the head's best, or fine-tuning's where it beat the head), with the
 * last epoch run; null where that is the kept one (nothing to explain) or there was no validation.
 */
export function restoredEpoch(history: readonly HistoryRow[]): { best: HistoryRow; last: HistoryRow } | null {
  const last = history.at(-1);
  const best = keptRow(history);
  return last && best && best !== last ? { best, last } : null;
}

/** What a job's refit trained, in words; null where the model served is the one chosen on validation. */
export function refitText(refit: Job['refit']): string | null {
  if (!refit) return null;
  const head = `the head's ${plural(refit.headEpochs, 'epoch')}`;
  const what = refit.fineTuningEpochs > 0 ? `${head} and fine-tuning's ${plural(refit.fineTuningEpochs, 'epoch')}` : head;
  return `${what} again on ${refit.images} training and validation images: the model served; the validation figures are the model chosen before it`;
}

/** How a finished (or detached) job ended, with its metrics and what to do next. */
export function printOutcome(io: Out, job: Job): void {
  const o = io.out;
  const took = elapsed(job);
  o.write(`\n${job.id} ${paintState(job.state, o)}${took !== null ? ` in ${duration(took)}` : ''}\n`);
  if (job.error) o.write(`error ${job.error.code}: ${job.error.message}\n`);
  if (job.validation) o.write(metricsText('validation', job.validation));
  if (job.test) o.write(metricsText('test', job.test));
  const kept = job.state === 'succeeded' ? restoredEpoch(job.history ?? []) : null;
  if (kept) {
    const epoch = (r: HistoryRow) =>
      r.phase === 'fine_tuning' ? `fine-tuning's epoch ${r.epoch}` : job.config?.method === 'scratch' ? `epoch ${r.epoch}` : `the head's epoch ${r.epoch}`;
    o.write(
      `${job.refit ? 'validation chose' : 'the model keeps the weights of'} ${epoch(kept.best)} (lowest validation loss ${num(kept.best.valLoss)}, ` +
        `accuracy ${pct(kept.best.valAccuracy)}), not ${job.refit ? '' : 'of '}the last, ${epoch(kept.last)} (accuracy ${pct(kept.last.valAccuracy)})\n`,
    );
  }
  const refit = refitText(job.refit);
  if (refit) o.write(`refit: ${refit}\n`);
  if (job.modelId) {
    o.write(`\nmodel ${job.modelId}\n`);
    o.write(`  ${cli()} predict ${job.modelId} <images…>\n  ${cli()} models pull ${job.modelId} ./model\n`);
  }
}

/** `jobs show`: the record, its history and its metrics. */
export function printJob(io: Out, job: Job): void {
  const o = io.out;
  const cfg = job.config ?? {};
  const lines: [string, string][] = [
    ['id', job.id],
    ['state', paintState(job.state, o)],
    ['dataset', job.datasetId],
    ['method', String(cfg.method ?? '-')],
    ['backbone', cfg.method === 'scratch' ? '(none: trained from scratch)' : String(cfg.backbone ?? '-')],
    ['input size', cfg.inputSize ? `${cfg.inputSize}px` : '-'],
    ['progress', `${Math.round((job.progress ?? 0) * 100)}%${job.phase ? ` (${phaseName(job.phase)}${job.epoch !== null ? `, epoch ${job.epoch}/${job.epochs ?? '?'}` : ''})` : ''}`],
  ];
  if (job.etaSeconds !== null && job.etaSeconds !== undefined && job.state === 'running') lines.push(['eta', duration(job.etaSeconds)]);
  lines.push(['attempts', String(job.attempts ?? 0)], ['created', when(job.createdAt)]);
  if (job.startedAt) lines.push(['started', when(job.startedAt)]);
  if (job.finishedAt) lines.push(['finished', `${when(job.finishedAt)} (${duration(elapsed(job))})`]);
  if (job.modelId) lines.push(['model', job.modelId]);
  const refit = refitText(job.refit);
  if (refit) lines.push(['refit', refit]);
  if (job.error) lines.push(['error', `${job.error.code}: ${job.error.message}`]);
  const w = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) o.write(`${k.padEnd(w)}  ${v}\n`);
  if (job.history?.length) {
    o.write('\n');
    o.write(
      table(
        ['phase', 'epoch', 'loss', 'acc', 'val_loss', 'val_acc', 'seconds'],
        job.history.map((r) => [phaseName(r.phase), r.epoch, num(r.loss), num(r.accuracy), num(r.valLoss), num(r.valAccuracy), r.seconds.toFixed(1)]),
        { align: ['left', 'right', 'right', 'right', 'right', 'right', 'right'] },
      ),
    );
  }
  if (job.validation) o.write('\n' + metricsText('validation', job.validation));
  if (job.test) o.write('\n' + metricsText('test', job.test));
}

export function splitsText(ds: Dataset): string {
  const splits = Object.keys(ds.splits ?? {});
  const rows = ds.classes.map((c) => [c, ...splits.map((s) => String(ds.splits[s]?.[c] ?? 0))]);
  rows.push(['total', ...splits.map((s) => String(Object.values(ds.splits[s] ?? {}).reduce((a, b) => a + b, 0)))]);
  return table(['class', ...splits], rows, { align: ['left', ...splits.map(() => 'right' as const)] });
}

/** `datasets show` and the result of `datasets push`. */
export function printDataset(io: Out, ds: Dataset): void {
  const o = io.out;
  o.write(`id       ${ds.id}\nname     ${ds.name}\nstatus   ${ds.status}\nimages   ${ds.imageCount} (${bytes(ds.bytes)})\ncreated  ${when(ds.createdAt)}\n\n`);
  o.write(splitsText(ds));
  if (ds.rejected?.length) {
    o.write(`\n${plural(ds.rejected.length, 'file')} rejected:\n`);
    for (const r of ds.rejected.slice(0, 10)) o.write(`  ${r.path}: ${r.reason}\n`);
    if (ds.rejected.length > 10) o.write(`  … and ${ds.rejected.length - 10} more (see --json)\n`);
  }
  for (const w of ds.warnings ?? []) o.write(`warning: ${w}\n`);
  const h = ds.health;
  if (h && (h.leakagePairs || h.nearDuplicateGroups)) {
    o.write(
      `health: ${plural(h.leakedImages, 'validation/test image')} leaked from an earlier split, ` +
        `${h.nearDuplicateImages} near-identical images in ${plural(h.nearDuplicateGroups, 'group')}; ` +
        `see ${cli()} datasets health ${ds.name}\n`,
    );
  }
}

/** `datasets health`: the findings, then each leaking pair and near-identical group by path (the first 20 each). */
export function printHealth(io: Out, h: DatasetHealth): void {
  const o = io.out;
  if (!h.findings.length) return void o.write('no near-copies, leakage between splits or odd images found\n');
  for (const f of h.findings) o.write(`- ${f.message}\n`);
  const shown = 20;
  if (h.leakage.length) {
    o.write(`\nleakage between splits (${h.leakage.length}):\n`);
    for (const l of h.leakage.slice(0, shown)) o.write(`  ${l.images[0].path}  ~  ${l.images[1].path}  (${l.similarity.toFixed(2)})\n`);
    if (h.leakage.length > shown) o.write(`  … and ${h.leakage.length - shown} more (see --json)\n`);
  }
  if (h.nearDuplicates.length) {
    o.write(`\nnear-identical images within a split (${h.nearDuplicates.length} groups):\n`);
    for (const g of h.nearDuplicates.slice(0, shown)) {
      o.write(`  ${g.images.map((i) => i.path).join('  ~  ')}${g.mixedLabels ? '  (labels differ)' : ''}\n`);
    }
    if (h.nearDuplicates.length > shown) o.write(`  … and ${h.nearDuplicates.length - shown} more (see --json)\n`);
  }
}

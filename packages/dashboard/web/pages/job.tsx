// One job: live state and progress, the loss and accuracy curves per phase, and the evaluation.
import { useMemo, useState } from 'preact/hooks';
import { ApiError, get, getBlob, request } from '../api';
import { useResource } from '../use-resource';
import { applyEvent, isTerminal, useJobEvents } from '../live';
import { curveData } from '../curves';
import { Link, paths } from '../router';
import { ago, dateTime, duration, elapsed, methodName, num, pct, phaseName, plural } from '../format';
import type { Dataset, DetailedMetrics, EvalMetrics, EvaluatedImage, Job } from '../types';
import { CurvesChart, TRAIN_COLOR, VAL_COLOR } from '../components/curves-chart';
import { ConfusionMatrix, PerClassTable, ReliabilityDiagram } from '../components/metrics';
import { Card, Empty, ErrorBox, Loading, Mono, PageHead, ProgressBar, Stat, StateBadge } from '../components/ui';
import { ExplanationView } from '../components/explanation';
import { Thumbnail } from '../components/thumbnail';

const STEPS: Record<string, string[]> = {
  fine_tuning: ['preparing', 'extracting', 'training_head', 'fine_tuning', 'evaluating', 'exporting'],
  feature_extraction: ['preparing', 'extracting', 'training_head', 'evaluating', 'exporting'],
  scratch: ['preparing', 'training_head', 'evaluating', 'exporting'],
};

const STATE_PHASE: Partial<Record<Job['state'], string>> = {
  queued: 'Waiting for a worker',
  succeeded: 'Finished',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

/** The epochs the configuration asks for, over all phases (early stopping may end a phase sooner). */
function plannedEpochs(job: Job): number | null {
  const c = job.config ?? {};
  const head = Number(c.featureExtraction?.epochs);
  if (!Number.isFinite(head)) return null;
  return head + (c.method === 'fine_tuning' ? Number(c.fineTuning?.epochs) || 0 : 0);
}

/**
 * The phases of a job, in order: a transfer-learning job with `refit` (the default) trains again on the training and
 * validation images before evaluating; a finished one shows that step where it did.
 */
function stepsOf(job: Job): string[] {
  const steps = STEPS[job.config?.method as string] ?? STEPS.fine_tuning!;
  const refits = job.state === 'succeeded' ? !!job.refit : job.config?.method !== 'scratch' && job.config?.refit !== false;
  if (!refits) return steps;
  const at = steps.indexOf('evaluating');
  return [...steps.slice(0, at), 'refitting', ...steps.slice(at)];
}

/** What the refit trained, in words (the CLI's report says the same). */
function refitHint(refit: NonNullable<Job['refit']>): string {
  const head = `head ${plural(refit.headEpochs, 'epoch')}`;
  return refit.fineTuningEpochs > 0 ? `${head}, fine-tuning ${plural(refit.fineTuningEpochs, 'epoch')}` : head;
}

function Steps({ job }: { job: Job }) {
  const steps = stepsOf(job);
  // A job that stopped has no phase any more; its history tells how far it got.
  const reached = job.phase ?? (job.state === 'succeeded' ? null : (curveData(job.history ?? []).rows.at(-1)?.phase ?? null));
  const at = reached ? steps.indexOf(reached) : -1;
  const done = job.state === 'succeeded';
  return (
    <ol class="steps">
      {steps.map((s, i) => {
        const cls = done || i < at ? 'done' : i === at ? (job.state === 'running' ? 'current' : 'stopped') : '';
        return (
          <li class={`step ${cls}`}>
            <span class="step-dot" aria-hidden="true" />
            {job.config?.method === 'scratch' && s === 'training_head' ? 'Training' : phaseName(s)}
          </li>
        );
      })}
    </ol>
  );
}

function Curves({ job }: { job: Job }) {
  const data = useMemo(() => curveData(job.history ?? []), [job.history]);
  if (!data.x.length) {
    return (
      <Empty>{isTerminal(job) ? 'This job recorded no epochs.' : 'The curves appear after the first epoch.'}</Empty>
    );
  }
  return (
    <>
      <div class="chart-legend">
        <span class="legend-item">
          <span class="legend-swatch" style={{ background: TRAIN_COLOR }} /> training
        </span>
        <span class="legend-item">
          <span class="legend-swatch" style={{ background: VAL_COLOR }} /> validation
        </span>
        <span class="muted small">point at a chart for the values of an epoch</span>
      </div>
      <div class="charts">
        <CurvesChart data={data} metric="loss" title="Loss" />
        <CurvesChart data={data} metric="accuracy" title="Accuracy" />
      </div>
    </>
  );
}

/** Whether evaluation metrics carry the confusion matrix and per-class numbers (older jobs' validation holds loss and accuracy only). */
const detailed = (m: EvalMetrics): m is DetailedMetrics =>
  Array.isArray(m.confusionMatrix) && Array.isArray(m.labels) && !!m.perClass;

/** Where the model looks in one evaluated image: Grad-CAM for the class it predicted and, where it differs, the true one. */
function ImageExplanation({ datasetId, modelId, image }: { datasetId: string; modelId: string; image: EvaluatedImage }) {
  const res = useResource((s) => getBlob(`/v1/datasets/${datasetId}/images/${image.imageId}`, s), [datasetId, image.imageId]);
  if (res.error) return <ErrorBox error={res.error} what="the image" />;
  if (!res.data) return <Loading what="the image" />;
  const right = image.label === image.predicted;
  return (
    <div class="gallery-explanation" data-image={image.imageId}>
      <ExplanationView modelId={modelId} image={res.data} label={image.predicted} note={right ? 'Predicted and true class' : 'Predicted class'} />
      {!right && <ExplanationView modelId={modelId} image={res.data} label={image.label} note="True class" />}
    </div>
  );
}

/** The images of one confusion-matrix cell: true `label`, predicted `predicted`; each can be explained. */
function Gallery({ job, split, label, predicted }: { job: Job; split: 'test' | 'validation'; label: string; predicted: string }) {
  const res = useResource((s) => get<{ labels: string[]; items: EvaluatedImage[] }>(`/v1/jobs/${job.id}/predictions?split=${split}`, s), [job.id, split]);
  const [explained, setExplained] = useState<EvaluatedImage | null>(null);
  if (res.error) return <ErrorBox error={res.error} what="the evaluated images" />;
  if (!res.data) return <Loading what="the evaluated images" />;
  const { labels, items } = res.data;
  const c = labels.indexOf(predicted);
  const cell = items.filter((i) => i.label === label && i.predicted === predicted).sort((a, b) => b.probabilities[c]! - a.probabilities[c]!);
  const shown = explained && cell.includes(explained) ? explained : null;
  return (
    <div class="gallery" data-label={label} data-predicted={predicted}>
      <h3>
        True {label}, predicted {predicted}: {plural(cell.length, 'image')}
      </h3>
      {job.modelId && cell.length > 0 && (
        <p class="muted small">Explain shows where the model looks in an image (Grad-CAM) for the class it predicted{label === predicted ? '' : ' and for the true class'}.</p>
      )}
      <ol class="gallery-list">
        {cell.map((i) => (
          <li data-image={i.imageId} class={i === shown ? 'selected' : ''}>
            <Thumbnail datasetId={job.datasetId} imageId={i.imageId} size={96} alt={i.path ?? i.imageId ?? ''} />
            <Mono>{i.path ?? i.imageId}</Mono>
            <span class="muted">{pct(i.probabilities[c]!)} {predicted}</span>
            {job.modelId && (
              <button type="button" class="btn btn-small" onClick={() => setExplained(i)} aria-pressed={i === shown}>
                Explain
              </button>
            )}
          </li>
        ))}
      </ol>
      {shown && job.modelId && (
        <>
          <h4>
            <Mono>{shown.path ?? shown.imageId}</Mono>
          </h4>
          <ImageExplanation key={shown.imageId} datasetId={job.datasetId} modelId={job.modelId} image={shown} />
        </>
      )}
    </div>
  );
}

function Evaluation({ metrics, split, job }: { metrics: EvalMetrics; split: 'test' | 'validation'; job: Job }) {
  const full = detailed(metrics);
  const [cell, setCell] = useState<{ r: number; c: number } | null>(null);
  return (
    <Card
      title={split === 'test' ? 'Test set' : 'Validation set'}
      actions={
        <span class="muted small">
          {split === 'test'
            ? 'images held out from training'
            : job.refit
              ? 'the dataset has no test split; these are the validation images, scored by the model chosen on them before the refit (the model served trained on them too)'
              : 'the dataset has no test split; these are the validation images'}
        </span>
      }
      class="evaluation"
    >
      <div class="stats">
        <Stat label="Accuracy" value={pct(metrics.accuracy)} />
        <Stat label="Loss" value={num(metrics.loss)} />
        {full && <Stat label="Images" value={metrics.confusionMatrix.reduce((a, r) => a + r.reduce((x, y) => x + y, 0), 0)} />}
        {full && <Stat label="Classes" value={metrics.labels.length} />}
      </div>
      {full ? (
        <>
          <div class="eval-grid">
            <div>
              <h3>Confusion matrix</h3>
              <ConfusionMatrix metrics={metrics} onCell={(r, c) => setCell({ r, c })} />
            </div>
            <div>
              <h3>Per class</h3>
              <PerClassTable metrics={metrics} />
              {metrics.calibration && (
                <>
                  <h3>Calibration</h3>
                  <ReliabilityDiagram calibration={metrics.calibration} />
                </>
              )}
            </div>
          </div>
          {cell && <Gallery job={job} split={split} label={metrics.labels[cell.r]!} predicted={metrics.labels[cell.c]!} />}
        </>
      ) : (
        <p class="muted small">This job recorded the accuracy and loss of this split, without a confusion matrix.</p>
      )}
    </Card>
  );
}

function ConfigSummary({ job }: { job: Job }) {
  const c = job.config ?? {};
  const rows: [string, string][] = [
    ['Method', methodName(c.method)],
    ['Backbone', c.method === 'scratch' ? '–' : String(c.backbone ?? '–')],
    ['Input size', c.inputSize ? `${c.inputSize} px` : 'backbone default'],
    ['Batch size', String(c.batchSize ?? '–')],
    ['Head', c.head ? `${c.head.units} units, dropout ${c.head.dropout}` : '–'],
    ['Head training', c.featureExtraction ? `${c.featureExtraction.epochs} epochs, ${c.featureExtraction.optimizer} @ ${c.featureExtraction.learningRate}` : '–'],
  ];
  if (c.method === 'fine_tuning' && c.fineTuning) {
    rows.push(['Fine-tuning', `${c.fineTuning.epochs} epochs, ${c.fineTuning.optimizer} @ ${c.fineTuning.learningRate}, from ${c.fineTuning.fromLayer ?? 'the top block'}`]);
  }
  rows.push(['Augmentation', c.augmentation === false ? 'off' : 'on']);
  if (c.method !== 'scratch') rows.push(['Refit', c.refit === false ? 'off' : 'on: the chosen epochs again on training and validation images']);
  rows.push(['Early stopping', c.earlyStopping === false || !c.earlyStopping ? 'off' : `patience ${c.earlyStopping.patience}`]);
  return (
    <Card title="Configuration">
      <dl class="kv">
        {rows.map(([k, v]) => (
          <>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </>
        ))}
      </dl>
      <details class="raw">
        <summary>Resolved configuration (JSON)</summary>
        <pre>{JSON.stringify(c, null, 2)}</pre>
      </details>
    </Card>
  );
}

const SHORT_PHASE: Record<string, string> = { training_head: 'head', fine_tuning: 'fine-tuning' };

function HistoryTable({ job }: { job: Job }) {
  const rows = curveData(job.history ?? []).rows;
  if (!rows.length) return null;
  return (
    <Card title="Epochs">
      <details open={rows.length <= 12}>
        <summary>{rows.length} epochs</summary>
        <div class="table-scroll">
          <table class="table compact">
            <thead>
              <tr>
                <th>Phase</th>
                <th class="num">Epoch</th>
                <th class="num">Loss</th>
                <th class="num">Accuracy</th>
                <th class="num">Val. loss</th>
                <th class="num">Val. acc.</th>
                <th class="num">Time</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr>
                  <td class="nowrap">{SHORT_PHASE[r.phase] ?? phaseName(r.phase)}</td>
                  <td class="num">{r.epoch}</td>
                  <td class="num">{num(r.loss)}</td>
                  <td class="num">{pct(r.accuracy)}</td>
                  <td class="num">{num(r.valLoss)}</td>
                  <td class="num">{pct(r.valAccuracy)}</td>
                  <td class="num">{duration(r.seconds)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </Card>
  );
}

export function JobPage({ id }: { id: string }) {
  const res = useResource((s) => get<Job>(`/v1/jobs/${id}`, s), [id]);
  const dataset = useResource((s) => (res.data ? get<Dataset>(`/v1/datasets/${res.data.datasetId}`, s) : Promise.resolve(undefined)), [res.data?.datasetId]);
  const [cancelling, setCancelling] = useState(false);
  const [actionError, setActionError] = useState<Error | null>(null);
  const job = res.data;
  const live = !!job && !isTerminal(job);

  useJobEvents(id, live, (e) => res.mutate((j) => (j ? applyEvent(j, e) : j)), () => void res.reload());

  if (res.error && !job) {
    return (
      <>
        <PageHead title={<Mono>{id}</Mono>} />
        <ErrorBox error={res.error} what="the job" />
      </>
    );
  }
  if (!job) return <Loading what="the job" />;

  const cancel = async () => {
    setCancelling(true);
    setActionError(null);
    try {
      await request(`/v1/jobs/${id}/cancel`, { method: 'POST' });
      await res.reload();
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'JOB_FINISHED')) setActionError(err as Error);
    } finally {
      setCancelling(false);
    }
  };

  const epochsRun = curveData(job.history ?? []).rows.length;
  const planned = plannedEpochs(job);
  const evaluation = job.test ? { m: job.test, split: 'test' as const } : job.validation ? { m: job.validation, split: 'validation' as const } : null;

  return (
    <div class="job-page" data-job={job.id} data-state={job.state}>
      <PageHead
        title={
          <>
            Job <Mono>{job.id}</Mono> <StateBadge state={job.state} />
          </>
        }
        sub={
          <>
            on <Link href={paths.dataset(job.datasetId)}>{dataset.data?.name ?? job.datasetId}</Link> · {methodName(job.config?.method)}
            {job.config?.method !== 'scratch' && job.config?.backbone ? <> · {job.config.backbone}</> : null} · created {ago(job.createdAt)}
          </>
        }
        actions={
          <>
            {live && (
              <button type="button" class="btn btn-danger" disabled={cancelling} onClick={cancel}>
                {cancelling ? 'Cancelling…' : 'Cancel job'}
              </button>
            )}
            {job.modelId && (
              <Link href={paths.model(job.modelId)} class="btn btn-primary">
                Try the model
              </Link>
            )}
            {job.state === 'succeeded' && (
              <Link href={paths.labelIssues(job.id)} class="btn">
                Label issues
              </Link>
            )}
            <Link href={paths.newJob(job.datasetId)} class="btn">
              Train again
            </Link>
          </>
        }
      />
      {actionError && <ErrorBox error={actionError} />}
      {job.error && (
        <div class="callout callout-error" role="alert">
          <strong>The job failed</strong>
          <div>
            {job.error.message} <code class="code-tag">{job.error.code}</code>
          </div>
        </div>
      )}

      <Card title="Progress" class="progress-card">
        <Steps job={job} />
        <ProgressBar value={job.state === 'succeeded' ? 1 : job.progress} state={job.state} label="job progress" />
        <div class="stats">
          <Stat label="Progress" value={pct(job.state === 'succeeded' ? 1 : job.progress, 0)} />
          <Stat label="Phase" value={STATE_PHASE[job.state] ?? phaseName(job.phase)} />
          <Stat
            label="Epochs"
            value={`${epochsRun} / ${planned ?? '–'}`}
            hint={
              job.state === 'running' && job.epoch !== null && job.epochs
                ? `${phaseName(job.phase).toLowerCase()}: ${job.epoch} / ${job.epochs}`
                : planned && epochsRun < planned && job.state === 'succeeded'
                  ? 'stopped early'
                  : undefined
            }
          />
          <Stat label={live ? 'ETA' : 'Took'} value={live ? duration(job.etaSeconds) : elapsed(job.startedAt, job.finishedAt)} hint={job.finishedAt ? dateTime(job.finishedAt) : undefined} />
          <Stat label="Attempts" value={job.attempts} hint={job.backend ? `backend: ${job.backend}` : undefined} />
          {job.config.dropLeaked && job.dropped && <Stat label="Left out" value={job.dropped.leaked} hint="leaked validation and test images" />}
          {job.refit && <Stat label="Refit" value={`${job.refit.images} images`} hint={refitHint(job.refit)} />}
        </div>
      </Card>

      <Card title="Training curves" actions={<span class="muted small">per epoch; shaded by phase</span>} class="curves-card">
        <Curves job={job} />
      </Card>

      {evaluation ? (
        <Evaluation metrics={evaluation.m} split={evaluation.split} job={job} />
      ) : (
        job.state === 'succeeded' && (
          <Card title="Evaluation">
            <Empty>No evaluation was recorded for this job.</Empty>
          </Card>
        )
      )}

      <div class="two-col">
        <ConfigSummary job={job} />
        <HistoryTable job={job} />
      </div>
    </div>
  );
}

// Jobs, newest first, with live state and progress for the ones still running.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { get } from '../api';
import { useResource } from '../use-resource';
import { applyEvent, isTerminal, useJobEvents } from '../live';
import { Link, paths } from '../router';
import { ago, duration, methodName, pct, phaseName } from '../format';
import type { SseEvent } from '../sse';
import type { DatasetList, Job, JobPage } from '../types';
import { Card, Empty, ErrorBox, Loading, Mono, PageHead, ProgressBar, StateBadge } from '../components/ui';

/** At most this many jobs are followed over their own event stream (browsers allow ~6 connections a host). */
const LIVE_STREAMS = 3;

export function progressText(job: Job): string {
  if (job.state === 'queued') return 'waiting for a worker';
  if (job.state !== 'running') return job.state === 'succeeded' ? 'done' : (job.error?.message ?? job.state);
  const parts = [phaseName(job.phase)];
  if (job.epoch !== null && job.epochs) parts.push(`epoch ${job.epoch}/${job.epochs}`);
  if (job.etaSeconds !== null && job.etaSeconds !== undefined) parts.push(`ETA ${duration(job.etaSeconds)}`);
  return parts.join(' · ');
}

function LiveRow({ job, live, onEvent, onEnd, datasetName }: { job: Job; live: boolean; onEvent: (e: SseEvent) => void; onEnd: () => void; datasetName?: string }) {
  useJobEvents(job.id, live, onEvent, onEnd);
  const acc = job.test?.accuracy ?? job.validation?.accuracy;
  return (
    <tr data-job={job.id}>
      <td>
        <Link href={paths.job(job.id)} class="strong">
          <Mono>{job.id}</Mono>
        </Link>
        <div class="muted small">
          {methodName(job.config?.method)}
          {job.config?.method !== 'scratch' && job.config?.backbone ? ` · ${job.config.backbone}` : ''}
        </div>
      </td>
      <td>
        <Link href={paths.dataset(job.datasetId)}>{datasetName ?? <Mono>{job.datasetId}</Mono>}</Link>
      </td>
      <td>
        <StateBadge state={job.state} />
      </td>
      <td class="progress-cell">
        <ProgressBar value={job.state === 'succeeded' ? 1 : job.progress} state={job.state} />
        <div class="muted small ellipsis" title={progressText(job)}>
          {progressText(job)}
        </div>
      </td>
      <td class="num">
        {acc !== undefined ? pct(acc) : '–'}
        {acc !== undefined && <div class="muted small">{job.test ? 'test' : 'validation'}</div>}
      </td>
      <td class="muted nowrap">{ago(job.createdAt)}</td>
    </tr>
  );
}

export function JobsPage() {
  const jobs = useResource((s) => get<JobPage>('/v1/jobs?limit=50', s), []);
  const datasets = useResource((s) => get<DatasetList>('/v1/datasets', s), []);
  const [overrides, setOverrides] = useState<Record<string, Job>>({});
  const names = useMemo(() => new Map((datasets.data?.items ?? []).map((d) => [d.id, d.name])), [datasets.data]);

  const base = jobs.data?.items ?? [];
  const items = base.map((j) => overrides[j.id] ?? j);
  const active = items.filter((j) => !isTerminal(j));
  const live = new Set(active.slice(0, LIVE_STREAMS).map((j) => j.id));

  // A fresh list replaces what the streams had merged in.
  useEffect(() => setOverrides({}), [jobs.data]);
  // Jobs beyond the streamed few, and new jobs, show up by reloading the list now and then.
  useEffect(() => {
    if (!active.length) return;
    const t = setInterval(() => void jobs.reload(), 10_000);
    return () => clearInterval(t);
  }, [active.length > 0, jobs.reload]);

  return (
    <>
      <PageHead
        title="Training jobs"
        sub="Each job trains a classifier on a dataset; the live ones update as they run."
        actions={
          <Link href={paths.newJob()} class="btn btn-primary">
            New job
          </Link>
        }
      />
      <Card>
        {jobs.error && <ErrorBox error={jobs.error} what="the jobs" />}
        {!jobs.data && !jobs.error && <Loading what="jobs" />}
        {jobs.data && !items.length && (
          <Empty>
            No jobs yet. <Link href={paths.datasets}>Upload a dataset</Link>, then <Link href={paths.newJob()}>start a job</Link>.
          </Empty>
        )}
        {items.length > 0 && (
          <div class="table-scroll">
            <table class="table jobs-table">
              <thead>
                <tr>
                  <th>Job</th>
                  <th>Dataset</th>
                  <th>State</th>
                  <th class="progress-cell">Progress</th>
                  <th class="num">Accuracy</th>
                  <th>Created</th>
                </tr>
              </thead>
              <tbody>
                {items.map((j, i) => (
                  <LiveRow
                    key={j.id}
                    job={j}
                    live={live.has(j.id)}
                    datasetName={names.get(j.datasetId)}
                    onEvent={(e) => setOverrides((o) => ({ ...o, [j.id]: applyEvent(o[j.id] ?? base[i]!, e) }))}
                    onEnd={() => void jobs.reload()}
                  />
                ))}
              </tbody>
            </table>
          </div>
        )}
        {jobs.data && jobs.data.total > items.length && (
          <div class="muted small pad">Showing the newest {items.length} of {jobs.data.total} jobs.</div>
        )}
      </Card>
    </>
  );
}

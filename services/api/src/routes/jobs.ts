// Training jobs: create, list, get, live events (SSE), cancel.
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { trainingInputSize } from '@graft/vision';
import {
  Binary,
  CancelResponse,
  CreateJobBody,
  IdParams,
  isTerminal,
  JobListQuery,
  JobPage,
  JobPredictions,
  JobSchema,
  LabelIssuesQuery,
  LabelIssuesSchema,
  plannedEpochs,
  PredictionsQuery,
  resolveConfig,
  type EvaluatedImages,
  type Job,
  type JobEvent,
  type JobRecord,
  type LabelIssuesFile,
  type ResolvedTrainingConfig,
} from '@graft/contract';
import { LABEL_ISSUES_FILE, PREDICTIONS_FILE, queuedJobRecord } from '@graft/queue';
import { keys, ObjectNotFoundError } from '@graft/storage';
import type { ApiDeps } from '../deps';
import { ApiError, notFound } from '../errors';
import { newId } from '../ids';
import type { DatasetService } from '../datasets/service';
import { backboneDescriber, findBackbone } from '../backbones';
import { admitJob, baseShapeAt, checkQuota, datasetCounts } from '../jobs/admission';
import { TenantInflight } from '../http/tenant-inflight';
import { backboneSource } from '@graft/storage';

/** The events stream: each event's data is JSON (a job, a history row, or the fields that changed). */
const EVENT_STREAM = Binary(['text/event-stream'], 'events: `state` (the job), `progress` (the fields that changed), `epoch` (a history row)');

export function jobView(r: JobRecord): Job {
  const { tenant: _t, cancelRequested: _c, ...rest } = r;
  return rest;
}

const jobRoutes: FastifyPluginAsyncTypebox<{ deps: ApiDeps; datasets: DatasetService }> = async (app, opts) => {
  const { deps, datasets } = opts;
  const store = deps.queue.jobs;
  // Feature shapes for the estimate, one description per backbone at its own size.
  const describe = backboneDescriber(backboneSource(deps.config.backbones, deps.storage));
  const baseShape = async (name: string, size: number) => {
    // A source that does not answer soon (weights on a remote host) gives way to the conservative shape.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), 5_000)));
    const description = await Promise.race([describe(name).catch(() => null), late]).finally(() => clearTimeout(timer));
    return baseShapeAt(description, size);
  };

  // An event stream stays open for the life of a job; each tenant may hold only so many.
  const streams = new TenantInflight(deps.config.limits.tenantStreams, 'open event streams', 'GRAFT_TENANT_STREAMS');

  const load = async (tenant: string, id: string) => {
    const rec = await store.getForTenant(tenant, id);
    if (!rec) throw notFound('job', id);
    return rec;
  };
  /** The job, which must have succeeded: what it found about its images is served from then on. */
  const succeeded = async (tenant: string, id: string) => {
    const rec = await load(tenant, id);
    if (rec.state !== 'succeeded' || !rec.modelId) {
      throw new ApiError('JOB_NOT_SUCCEEDED', `job '${rec.id}' is ${rec.state}: its images are evaluated once it has succeeded`, { state: rec.state });
    }
    return rec as JobRecord & { modelId: string };
  };

  app.post(
    '/v1/jobs',
    {
      config: { errors: ['DATASET_NOT_FOUND', 'UNKNOWN_BACKBONE', 'INVALID_CONFIG', 'TOO_FEW_CLASSES', 'TENANT_QUOTA_EXCEEDED'] },
      schema: { tags: ['jobs'], summary: 'Start a training job', body: CreateJobBody, response: { 202: JobSchema } },
    },
    async (req, reply) => {
      const body = req.body;
      const ds = await datasets.get(req.tenant, body.datasetId);
      if (!ds) throw notFound('dataset', body.datasetId);
      const config = resolveConfig(body.config);
      const bb = config.method === 'scratch' ? null : findBackbone(config.backbone);
      if (config.method !== 'scratch') {
        if (!bb) {
          throw new ApiError('UNKNOWN_BACKBONE', `config.backbone: unknown backbone '${config.backbone}'; see GET /v1/backbones`, {
            field: 'config.backbone',
          });
        }
        if (config.inputSize !== null && bb.minInputSize && config.inputSize < bb.minInputSize) {
          throw new ApiError('INVALID_CONFIG', `config.inputSize: ${bb.name} needs at least ${bb.minInputSize}`, {
            field: 'config.inputSize',
          });
        }
      }
      if (config.fineTuning.fromLayer !== null && config.method !== 'fine_tuning') {
        throw new ApiError('INVALID_CONFIG', 'config.fineTuning.fromLayer applies only to method "fine_tuning"', {
          field: 'config.fineTuning.fromLayer',
        });
      }
      const trainClasses = Object.keys(ds.splits.train ?? {});
      if (trainClasses.length < 2) {
        throw new ApiError('TOO_FEW_CLASSES', `dataset '${ds.id}' has fewer than two classes in its train split`, {
          field: 'datasetId',
        });
      }
      // The record shows, and the worker trains, the same resolved config: the input size included.
      const accepted: ResolvedTrainingConfig = { ...config, inputSize: trainingInputSize(config) };
      checkQuota(await store.countActive(req.tenant), deps.config.jobs);
      const size = accepted.inputSize;
      admitJob(accepted, datasetCounts(ds.splits), bb ? await baseShape(bb.name, size) : null, size, deps.config.jobs);
      const rec = queuedJobRecord({
        id: newId('job'),
        tenant: req.tenant,
        datasetId: ds.id,
        epochs: plannedEpochs(accepted),
        config: accepted,
      });
      await deps.queue.enqueue(rec, {
        jobId: rec.id,
        tenant: req.tenant,
        datasetId: ds.id,
        manifestKey: keys.datasetManifest(req.tenant, ds.id),
        config: accepted,
      });
      await store.trimFinished(req.tenant, deps.config.jobs.tenantRecords);
      reply.code(202).header('location', `/v1/jobs/${rec.id}`);
      return jobView(rec);
    },
  );

  app.get(
    '/v1/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'List jobs, newest first',
        querystring: JobListQuery,
        response: { 200: JobPage },
      },
    },
    async (req) => {
      const q = req.query;
      const limit = q.limit ?? 50;
      const offset = q.offset ?? 0;
      const { items, total } = await store.list(req.tenant, { state: q.state, limit, offset });
      return { items: items.map(jobView), total, limit, offset };
    },
  );

  app.get(
    '/v1/jobs/:id',
    {
      config: { errors: ['JOB_NOT_FOUND'] },
      schema: { tags: ['jobs'], summary: 'A job: state, progress, history, metrics', params: IdParams('job'), response: { 200: JobSchema } },
    },
    async (req) => jobView(await load(req.tenant, req.params.id)),
  );

  app.get(
    '/v1/jobs/:id/predictions',
    {
      config: { errors: ['JOB_NOT_FOUND', 'JOB_NOT_SUCCEEDED', 'ARTIFACT_NOT_FOUND'] },
      schema: {
        tags: ['jobs'],
        summary: 'Each evaluated image of a split: its label, the predicted label and the calibrated probabilities',
        params: IdParams('job'),
        querystring: PredictionsQuery,
        response: { 200: JobPredictions },
      },
    },
    async (req) => {
      const rec = await succeeded(req.tenant, req.params.id);
      const split = req.query.split ?? 'validation';
      let file: EvaluatedImages;
      try {
        file = await deps.storage.getJson<EvaluatedImages>(keys.modelArtifact(req.tenant, rec.modelId, PREDICTIONS_FILE));
      } catch (err) {
        if (err instanceof ObjectNotFoundError) throw notFound('artifact', `${rec.modelId}/${PREDICTIONS_FILE}`);
        throw err;
      }
      return { jobId: rec.id, modelId: rec.modelId, split, labels: file.labels, items: file[split] ?? [] };
    },
  );

  app.get(
    '/v1/jobs/:id/label-issues',
    {
      config: { errors: ['JOB_NOT_FOUND', 'JOB_NOT_SUCCEEDED', 'LABEL_ISSUES_NOT_AVAILABLE'] },
      schema: {
        tags: ['jobs'],
        summary: 'Likely label errors: images whose given label disagrees most confidently with an out-of-sample prediction',
        description:
          'Every training image is scored by a model that did not see it (5-fold cross-validation over the frozen features), ' +
          'every validation image by the folds together. Confident learning picks the likely errors: per-class thresholds (the ' +
          'mean probability of each class over the images given it) estimate how many images of each label belong to each other ' +
          'class, and that many are taken, those with the largest margin. They are listed most suspicious first, as ' +
          '`{imageId, path, split, label, suggestedLabel, score}`, score in [0, 1]. Images are named by the ids of the ' +
          "dataset's health report (GET /v1/datasets/:id/images/:imageId/thumbnail). 409 JOB_NOT_SUCCEEDED before the job has " +
          'succeeded; 409 LABEL_ISSUES_NOT_AVAILABLE where the job has none (trained from scratch, end-to-end augmentation, ' +
          'config.labelIssues false).',
        params: IdParams('job'),
        querystring: LabelIssuesQuery,
        response: { 200: LabelIssuesSchema },
      },
    },
    async (req) => {
      const rec = await succeeded(req.tenant, req.params.id);
      const q = req.query;
      const file = await deps.storage.getJsonOrNull<LabelIssuesFile>(keys.jobArtifact(req.tenant, rec.id, LABEL_ISSUES_FILE));
      if (!file?.available) {
        const reason = file ? file.reason : 'the job was trained before label issues were looked for';
        throw new ApiError('LABEL_ISSUES_NOT_AVAILABLE', `job '${rec.id}' has no label issues: ${reason}`, { id: rec.id });
      }
      const all = q.split ? file.items.filter((it) => it.split === q.split) : file.items;
      const offset = q.offset ?? 0;
      const items = all.slice(offset, q.limit === undefined ? undefined : offset + q.limit);
      const { labels, method, scored } = file;
      return { jobId: rec.id, datasetId: rec.datasetId, labels, method, scored, total: all.length, offset, items };
    },
  );

  app.post(
    '/v1/jobs/:id/cancel',
    {
      config: { errors: ['JOB_NOT_FOUND', 'JOB_FINISHED'] },
      schema: { tags: ['jobs'], summary: 'Cancel a queued or running job', params: IdParams('job'), response: { 202: CancelResponse } },
    },
    async (req, reply) => {
      const rec = await load(req.tenant, req.params.id);
      if (isTerminal(rec.state)) {
        throw new ApiError('JOB_FINISHED', `job '${rec.id}' has already ${rec.state}`, { state: rec.state });
      }
      const outcome = await deps.queue.cancel(rec);
      reply.code(202);
      return { id: rec.id, state: outcome === 'cancelled' ? 'cancelled' : rec.state, cancelRequested: true };
    },
  );

  app.get(
    '/v1/jobs/:id/events',
    {
      config: { errors: ['JOB_NOT_FOUND'] },
      schema: {
        tags: ['jobs'],
        summary: 'Server-Sent Events: progress, epoch, state; ends with the final state',
        params: IdParams('job'),
        response: { 200: EVENT_STREAM },
      },
    },
    async (req, reply) => {
      const rec = await load(req.tenant, req.params.id);
      await streams.enter(req);
      reply.raw.once('close', () => streams.leave(req));
      streamEvents(deps, rec, reply);
    },
  );
};

export default jobRoutes;

/** Streams a job's events over SSE, starting with a snapshot and ending after a terminal state. */
function streamEvents(deps: ApiDeps, rec: JobRecord, reply: FastifyReply): void {
  const store = deps.queue.jobs;
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  let done = false;
  let unsubscribe = () => {};
  const finish = () => {
    if (done) return;
    done = true;
    clearInterval(heartbeat);
    unsubscribe();
    res.end();
  };
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  res.on('close', finish);
  deps.events
    .subscribe(store.eventsChannel(rec.id), (message) => {
      if (done) return;
      const ev = JSON.parse(message) as JobEvent;
      send(ev.type, ev.data);
      if (ev.type === 'state' && ev.data.state && isTerminal(ev.data.state)) finish();
    })
    .then(async (unsub) => {
      unsubscribe = unsub;
      if (done) return unsub();
      // The snapshot is read after subscribing, so no event between the two is missed.
      const now = await store.get(rec.id);
      if (!now) return finish();
      send('state', jobView(now));
      if (isTerminal(now.state)) finish();
    })
    .catch(finish);
}

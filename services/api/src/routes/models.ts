// Trained models: records, artifacts, prediction, explanation.
import type { FastifyReply, FastifyRequest, RequestPayload } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  ArtifactList,
  Binary,
  NoContent,
  ArtifactParams,
  ExplainQuery,
  ExplainResponse,
  IdParams,
  ModelList,
  ModelRecordSchema,
  PredictQuery,
  PredictResponseSchema,
  type ErrorCode,
} from '@graft/contract';
import type { ApiDeps } from '../deps';
import { ApiError, notFound } from '../errors';
import { Explainers } from '../models/explainers';
import { undecodableImage } from '../models/predict-images';
import type { ModelService } from '../models/service';
import { IMAGE_TYPES, predictBody } from '../models/predict-body';
import { TenantInflight } from '../http/tenant-inflight';
import { FairGate } from '../models/fair-gate';
import type { Predictor } from '../models/predictor';
import { ObjectNotFoundError } from '@graft/storage';

/** What /predict and /explain may fail with, besides a missing model. */
const IMAGE_ERRORS = ['MODEL_NOT_FOUND', 'INVALID_IMAGE', 'IMAGE_TOO_LARGE', 'TOO_MANY_IMAGES'] as const satisfies readonly ErrorCode[];

const modelRoutes: FastifyPluginAsyncTypebox<{ deps: ApiDeps; models: ModelService; predictor: Predictor }> = async (app, opts) => {
  const { deps, models, predictor } = opts;
  const limits = deps.config.limits;
  // The engine, batching and ONNX Runtime's threads come from configuration; each inference batch's size goes to /metrics.
  predictor.configure({
    engine: deps.config.predict.engine,
    int8: deps.config.int8.enabled,
    maxBatch: deps.config.predict.maxBatch,
    maxWaitMs: deps.config.predict.maxWaitMs,
    workers: deps.config.predict.workers,
    threads: deps.config.predict.threads ?? undefined,
    log: { info: (obj, msg) => app.log.info(obj, msg), warn: (obj, msg) => app.log.warn(obj, msg) },
    onBatch: (size) => app.metrics.predictBatchSize.observe(size),
  });

  app.addContentTypeParser(IMAGE_TYPES, { parseAs: 'buffer', bodyLimit: limits.predictBodyBytes }, (_req, body, done) =>
    done(null, body),
  );

  const load = async (tenant: string, id: string) => {
    const m = await models.get(tenant, id);
    if (!m) throw notFound('model', id);
    return m;
  };

  const body = predictBody(models, limits);
  const decodeGate = new FairGate(limits.predictDecodePixels);
  const inflight = new TenantInflight(limits.tenantPredicts, '/predict and /explain requests', 'GRAFT_TENANT_PREDICTS', {
    size: limits.tenantPredictQueue,
    variable: 'GRAFT_TENANT_PREDICT_QUEUE',
  });
  const explainers = new Explainers(models);
  app.addHook('onClose', async () => explainers.close());

  app.get('/v1/models', { schema: { tags: ['models'], summary: 'List models, newest first', response: { 200: ModelList } } }, async (req) => {
    const items = await models.list(req.tenant);
    return { items, total: items.length };
  });

  app.get(
    '/v1/models/:id',
    { config: { errors: ['MODEL_NOT_FOUND'] }, schema: { tags: ['models'], summary: 'A model', params: IdParams('mdl'), response: { 200: ModelRecordSchema } } },
    async (req) => load(req.tenant, req.params.id),
  );

  app.get(
    '/v1/models/:id/artifacts',
    {
      config: { errors: ['MODEL_NOT_FOUND'] },
      schema: { tags: ['models'], summary: "The model's files", params: IdParams('mdl'), response: { 200: ArtifactList } },
    },
    async (req) => {
      const { id } = req.params;
      await load(req.tenant, id);
      const files = await models.artifacts(req.tenant, id);
      return { items: files.map((f) => ({ ...f, url: `/v1/models/${id}/artifacts/${f.name}` })) };
    },
  );

  app.get(
    '/v1/models/:id/artifacts/:file',
    {
      config: { errors: ['MODEL_NOT_FOUND', 'ARTIFACT_NOT_FOUND'] },
      schema: {
        tags: ['models'],
        summary: 'One model file',
        params: ArtifactParams,
        response: { 200: Binary(['application/octet-stream'], 'the file') },
      },
    },
    async (req, reply) => {
      const { id, file } = req.params;
      await load(req.tenant, id);
      try {
        const obj = await models.artifact(req.tenant, id, file);
        reply.header('content-type', obj.contentType ?? 'application/octet-stream');
        if (obj.contentLength !== undefined) reply.header('content-length', obj.contentLength);
        return reply.send(obj.body);
      } catch (err) {
        if (err instanceof ObjectNotFoundError) throw notFound('artifact', file);
        throw err;
      }
    },
  );

  // /predict and /explain take images the same way: bounded, in flight per tenant, read only once the model is found.
  const imageBody = {
    bodyLimit: limits.predictBodyBytes,
    ...inflight.hooks(),
    preParsing: async (req: FastifyRequest, _reply: FastifyReply, payload: RequestPayload) => {
      await body.beforeBody(req);
      return payload;
    },
  };

  app.post(
    '/v1/models/:id/predict',
    {
      ...imageBody,
      config: { errors: IMAGE_ERRORS },
      schema: {
        tags: ['models'],
        summary: 'Classify one or more images',
        description:
          "multipart/form-data with file fields 'image', a raw image/jpeg|png|webp body, or JSON {\"images\": [\"<base64>\", …]}. One result per image, in the order sent.",
        params: IdParams('mdl'),
        querystring: PredictQuery,
        response: { 200: PredictResponseSchema },
      },
    },
    async (req) => {
      const started = performance.now();
      const { id } = req.params;
      const query = req.query;
      const topKAsked = query.topK ?? 5;
      // The model was found before the body was read (beforeBody).
      const model = body.modelOf(req);
      if (!model) throw notFound('model', id);
      const { images, pixels } = await body.readImages(req);
      const topK = Math.min(topKAsked, model.labels.length);
      // Decoding takes turns between tenants once GRAFT_PREDICT_DECODE_PIXELS are in flight.
      const release = await decodeGate.acquire(req.tenant, pixels);
      let answer: Awaited<ReturnType<typeof predictor.predictTimed>>;
      try {
        answer = await predictor.predictTimed(req.tenant, id, images, topK, { flip: query.tta === 'flip', oodThreshold: query.oodThreshold });
      } catch (err) {
        // Deleted through another API process since its record was remembered.
        if (err instanceof ObjectNotFoundError) throw notFound('model', id);
        throw err;
      } finally {
        release();
      }
      const { predictions, outOfDistribution, timing } = answer;
      const totalMs = performance.now() - started;
      app.metrics.predictSeconds.observe(totalMs / 1000);
      const ms = (v: number) => Math.round(v * 100) / 100;
      return {
        modelId: id,
        results: predictions.map((p, i) => ({ predictions: p, outOfDistribution: outOfDistribution?.[i] ?? null })),
        timing: {
          totalMs: ms(totalMs),
          decodeMs: timing.decodeMs === null ? null : ms(timing.decodeMs),
          queueMs: ms(timing.queueMs),
          inferenceMs: ms(timing.inferenceMs),
          batchSize: timing.batchSize,
          loadMs: ms(timing.loadMs),
          engine: timing.engine,
        },
      };
    },
  );

  app.post(
    '/v1/models/:id/explain',
    {
      ...imageBody,
      config: { errors: IMAGE_ERRORS },
      schema: {
        tags: ['models'],
        summary: 'Grad-CAM: where the model looks for a class in one image',
        description:
          'One image as /predict takes it. Answers {label, probability, heatmap: {width, height, values}, overlay}: values row-major in [0, 1] over the last convolutional feature map, overlay a PNG data URL of the heatmap over the image.',
        params: IdParams('mdl'),
        querystring: ExplainQuery,
        response: { 200: ExplainResponse },
      },
    },
    async (req) => {
      const { id } = req.params;
      const { label } = req.query;
      const model = body.modelOf(req);
      if (!model) throw notFound('model', id);
      if (label !== undefined && !model.labels.includes(label)) {
        throw new ApiError('VALIDATION_FAILED', `label '${label}' is not one of the model's: ${model.labels.join(', ')}`, { label });
      }
      const { images, pixels } = await body.readImages(req);
      if (images.length !== 1) throw new ApiError('VALIDATION_FAILED', `explain takes one image, got ${images.length}`, { images: images.length });
      const release = await decodeGate.acquire(req.tenant, pixels);
      try {
        return { modelId: id, ...(await explainers.explain(req.tenant, id, images[0]!, label)) };
      } catch (err: any) {
        if (err instanceof ObjectNotFoundError) throw notFound('model', id);
        if (typeof err?.index === 'number') throw undecodableImage(err.index);
        throw err;
      } finally {
        release();
      }
    },
  );

  app.delete(
    '/v1/models/:id',
    {
      config: { errors: ['MODEL_NOT_FOUND'] },
      schema: { tags: ['models'], summary: 'Delete a model', params: IdParams('mdl'), response: { 204: NoContent('deleted') } },
    },
    async (req, reply) => {
      const { id } = req.params;
      await load(req.tenant, id);
      await models.delete(req.tenant, id);
      predictor.forget(req.tenant, id);
      explainers.forget(req.tenant, id);
      return reply.code(204).send();
    },
  );
};

export default modelRoutes;

// Trained models: records, artifacts, prediction.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiDeps } from '../deps';
import { ApiError, notFound } from '../errors';
import { ID_PATTERN } from '../ids';
import { IdParams } from '../schemas/common';
import type { ModelRecord, ModelService } from '../models/service';
import { checkPredictImages } from '../models/predict-images';
import { TenantInflight } from '../http/tenant-inflight';
import { FairGate } from '../models/fair-gate';
import type { Predictor } from '../models/predictor';
import { ObjectNotFoundError } from '@graft/storage';

const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp'];
const PREDICT_TYPES = [...IMAGE_TYPES, 'multipart/form-data', 'application/json'];
const PredictQuery = Type.Object({ topK: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 5 })) });
const ArtifactParams = Type.Object({
  id: Type.String({ pattern: ID_PATTERN.mdl }),
  file: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$' }),
});

export default async function modelRoutes(
  app: FastifyInstance,
  opts: { deps: ApiDeps; models: ModelService; predictor: Predictor },
) {
  const { deps, models, predictor } = opts;
  const limits = deps.config.limits;
  // The engine and batching come from configuration; each inference batch's size goes to /metrics.
  predictor.configure({
    engine: deps.config.predict.engine,
    maxBatch: deps.config.predict.maxBatch,
    maxWaitMs: deps.config.predict.maxWaitMs,
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

  const tooLarge = () =>
    new ApiError('PAYLOAD_TOO_LARGE', `the images of one request may take at most ${limits.predictBodyBytes} bytes together (GRAFT_MAX_PREDICT_BYTES)`, {
      limit: limits.predictBodyBytes,
    });
  const tooMany = () =>
    new ApiError('TOO_MANY_IMAGES', `at most ${limits.predictImages} images per request (GRAFT_MAX_PREDICT_IMAGES)`);

  /** The file parts of a multipart body, counted together against GRAFT_MAX_PREDICT_BYTES as they arrive. */
  const readMultipart = async (req: FastifyRequest): Promise<Uint8Array[]> => {
    const images: Uint8Array[] = [];
    let total = 0;
    let over = false;
    try {
      for await (const part of req.parts({ limits: { fileSize: limits.predictBodyBytes, files: limits.predictImages + 1 } })) {
        if (part.type !== 'file') continue;
        if (part.fieldname !== 'image') {
          throw new ApiError('VALIDATION_FAILED', `unexpected file field '${part.fieldname}': send images in fields named 'image'`, {
            field: part.fieldname,
          });
        }
        if (images.length >= limits.predictImages) throw tooMany();
        const chunks: Buffer[] = [];
        for await (const chunk of part.file as AsyncIterable<Buffer>) {
          total += chunk.length;
          if (total > limits.predictBodyBytes) {
            over = true;
            throw tooLarge();
          }
          chunks.push(chunk);
        }
        images.push(Buffer.concat(chunks));
      }
    } catch (err) {
      // Leaving a part half read ends the multipart parser with an error of its own; the limit is the reason.
      throw over ? tooLarge() : err;
    }
    return images;
  };

  /** The request's images, checked, and their pixels together. */
  const readImages = async (req: FastifyRequest): Promise<{ images: Uint8Array[]; pixels: number }> => {
    const images: Uint8Array[] = [];
    if (req.isMultipart()) {
      images.push(...(await readMultipart(req)));
    } else if (Buffer.isBuffer(req.body)) {
      images.push(req.body);
    } else if (req.body && typeof req.body === 'object') {
      const list = (req.body as { images?: unknown }).images;
      if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
        throw new ApiError('VALIDATION_FAILED', 'images must be an array of base64 strings', { field: 'images' });
      }
      if (list.length > limits.predictImages) throw tooMany();
      list.forEach((s: string, i: number) => {
        const clean = s.replace(/^data:[^,]*,/, '');
        if (!/^[A-Za-z0-9+/=\s_-]*$/.test(clean)) {
          throw new ApiError('INVALID_IMAGE', `images[${i}] is not base64`, { index: i });
        }
        images.push(Buffer.from(clean, 'base64'));
      });
    } else {
      throw new ApiError(
        'UNSUPPORTED_MEDIA_TYPE',
        'send images as multipart/form-data (fields named image), a raw image/jpeg, image/png or image/webp body, or JSON {"images": ["<base64>"]}',
      );
    }
    if (!images.length) throw new ApiError('VALIDATION_FAILED', 'no image in the request');
    images.forEach((b, i) => {
      if (b.length === 0) throw new ApiError('INVALID_IMAGE', `image ${i} is empty`, { index: i });
    });
    return { images, pixels: await checkPredictImages(images, limits) };
  };

  /**
   * Runs before the body is read (after authentication): a body declared over the limit, or one for a model
   * that does not exist, is refused without reading it.
   */
  const decodeGate = new FairGate(limits.predictDecodePixels);
  const inflight = new TenantInflight(limits.tenantPredicts, '/predict requests', 'GRAFT_TENANT_PREDICTS');
  const modelOfRequest = new WeakMap<FastifyRequest, ModelRecord>();
  const mdlPattern = new RegExp(ID_PATTERN.mdl);
  const beforeBody = async (req: FastifyRequest) => {
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type && !PREDICT_TYPES.includes(type)) {
      throw new ApiError('UNSUPPORTED_MEDIA_TYPE', `unsupported Content-Type '${type}': send multipart/form-data, ${IMAGE_TYPES.join(', ')} or application/json`);
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limits.predictBodyBytes) throw tooLarge();
    const { id } = req.params as { id: string };
    if (!mdlPattern.test(id)) return; // the params schema answers
    const model = await models.getCached(req.tenant, id);
    if (!model) throw notFound('model', id);
    modelOfRequest.set(req, model);
  };

  app.get('/v1/models', { schema: { tags: ['models'], summary: 'List models, newest first' } }, async (req) => {
    const items = await models.list(req.tenant);
    return { items, total: items.length };
  });

  app.get(
    '/v1/models/:id',
    { schema: { tags: ['models'], summary: 'A model', params: IdParams(ID_PATTERN.mdl) } },
    async (req) => load(req.tenant, (req.params as { id: string }).id),
  );

  app.get(
    '/v1/models/:id/artifacts',
    { schema: { tags: ['models'], summary: "The model's files", params: IdParams(ID_PATTERN.mdl) } },
    async (req) => {
      const { id } = req.params as { id: string };
      await load(req.tenant, id);
      const files = await models.artifacts(req.tenant, id);
      return { items: files.map((f) => ({ ...f, url: `/v1/models/${id}/artifacts/${f.name}` })) };
    },
  );

  app.get(
    '/v1/models/:id/artifacts/:file',
    { schema: { tags: ['models'], summary: 'One model file', params: ArtifactParams } },
    async (req, reply) => {
      const { id, file } = req.params as { id: string; file: string };
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

  app.post(
    '/v1/models/:id/predict',
    {
      bodyLimit: limits.predictBodyBytes,
      ...inflight.hooks(),
      preParsing: async (req, _reply, payload) => {
        await beforeBody(req);
        return payload;
      },
      schema: {
        tags: ['models'],
        summary: 'Classify one or more images',
        description:
          "multipart/form-data with file fields 'image', a raw image/jpeg|png|webp body, or JSON {\"images\": [\"<base64>\", …]}. One result per image, in the order sent.",
        params: IdParams(ID_PATTERN.mdl),
        querystring: PredictQuery,
      },
    },
    async (req) => {
      const started = performance.now();
      const { id } = req.params as { id: string };
      const topKAsked = (req.query as { topK?: number }).topK ?? 5;
      // The model was found before the body was read (beforeBody).
      const model = modelOfRequest.get(req);
      if (!model) throw notFound('model', id);
      const { images, pixels } = await readImages(req);
      const topK = Math.min(topKAsked, model.labels.length);
      // Decoding takes turns between tenants once GRAFT_PREDICT_DECODE_PIXELS are in flight.
      const release = await decodeGate.acquire(req.tenant, pixels);
      const { predictions, timing } = await predictor
        .predictTimed(req.tenant, id, images, topK)
        .catch((err) => {
          // Deleted through another API process since its record was remembered.
          if (err instanceof ObjectNotFoundError) throw notFound('model', id);
          throw err;
        })
        .finally(release);
      const totalMs = performance.now() - started;
      app.metrics.predictSeconds.observe(totalMs / 1000);
      const ms = (v: number | null) => (v === null ? null : Math.round(v * 100) / 100);
      return {
        modelId: id,
        results: predictions.map((p) => ({ predictions: p })),
        timing: {
          totalMs: ms(totalMs),
          decodeMs: ms(timing.decodeMs),
          queueMs: ms(timing.queueMs),
          inferenceMs: ms(timing.inferenceMs),
          batchSize: timing.batchSize,
          loadMs: ms(timing.loadMs),
          engine: timing.engine,
        },
      };
    },
  );

  app.delete(
    '/v1/models/:id',
    { schema: { tags: ['models'], summary: 'Delete a model', params: IdParams(ID_PATTERN.mdl) } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      await load(req.tenant, id);
      await models.delete(req.tenant, id);
      predictor.forget(req.tenant, id);
      reply.code(204);
    },
  );
}

// The API as a Fastify plugin tree, without listen(): server.ts listens, tests use app.inject().
import Fastify, { type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import rateLimit from '@fastify/rate-limit';
import type { Logger } from '@graft/config';
import type { ApiDeps } from './deps';
import errors from './plugins/errors';
import auth from './plugins/auth';
import metrics from './plugins/metrics';
import healthRoutes from './routes/health';
import datasetRoutes from './routes/datasets';
import jobRoutes from './routes/jobs';
import modelRoutes from './routes/models';
import backboneRoutes from './routes/backbones';
import { DatasetService } from './datasets/service';
import { ModelService } from './models/service';
import { Predictor } from './models/predictor';
import { ApiError } from './errors';
import bodyGuards from './plugins/body-guards';
import { docsSecurity } from './plugins/docs-security';

export async function buildApp(deps: ApiDeps, opts: { logger?: Logger } = {}): Promise<FastifyInstance> {
  const { limits, http } = deps.config;
  const app = Fastify({
    loggerInstance: opts.logger,
    // JSON bodies; /predict, dataset uploads and multipart set their own limits.
    bodyLimit: limits.jsonBodyBytes,
    ajv: { customOptions: { removeAdditional: false, useDefaults: true, coerceTypes: 'array', allErrors: true, strict: false } },
    // A request, body included, must arrive within these; a trickled body or header is cut off.
    requestTimeout: http.requestTimeoutMs,
    trustProxy: typeof http.trustProxy === 'number' ? (_address: string, hop: number) => hop < (http.trustProxy as number) : http.trustProxy,
    http: {
      headersTimeout: http.headersTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(http.headersTimeoutMs / 4))),
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  await app.register(errors);
  await app.register(bodyGuards, { jsonDepth: limits.jsonDepth });
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Graft API',
        version: '1',
        description:
          'Train image classifiers from small datasets by transfer learning, and serve predictions. Every error answer is ' +
          '{"error": {"code", "message", "details"?}} with a code of the error catalogue (docs/api.md).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: deps.config.apiKeys.length ? [{ bearer: [] }] : [],
    },
  });
  await app.register(auth, {
    keys: deps.config.apiKeys,
    failures: { redis: deps.limiterRedis, prefix: deps.config.queuePrefix, perMinute: limits.authFailuresPerMinute },
  });
  if (limits.rateLimitPerMinute > 0) {
    await app.register(rateLimit, {
      max: limits.rateLimitPerMinute,
      timeWindow: 60_000,
      // Counted in Redis, so that every API process shares one budget per key; skipped while Redis is down.
      redis: deps.limiterRedis,
      nameSpace: `${deps.config.queuePrefix}:ratelimit:`,
      skipOnError: true,
      keyGenerator: (req) => req.tenant || req.ip,
      allowList: (req) => /^\/healthz(\?|$)/.test(req.url),
      errorResponseBuilder: (_req, ctx) =>
        Object.assign(new ApiError('RATE_LIMITED', `rate limit of ${ctx.max} requests a minute exceeded; retry in ${Math.ceil(ctx.ttl / 1000)} s`), {
          statusCode: 429,
        }),
    });
  }
  // After the rate limiter: it limits the routes registered after it.
  await app.register(swaggerUi, { routePrefix: '/docs', ...docsSecurity });
  await app.register(multipart, { limits: { fields: 10, parts: 1000, fieldSize: 16 * 1024 } });
  await app.register(metrics, { queue: deps.queue });

  const datasets = new DatasetService(deps.storage, deps.config);
  const models = new ModelService(deps.storage);
  const predictor = new Predictor(models, deps.config.predict.cacheBytes);
  app.addHook('onClose', async () => predictor.close());

  await app.register(healthRoutes, { deps });
  await app.register(datasetRoutes, { deps, datasets });
  await app.register(import('./routes/dataset-images'), { deps });
  await app.register(jobRoutes, { deps, datasets });
  await app.register(modelRoutes, { deps, models, predictor });
  await app.register(backboneRoutes, { deps });
  await app.register(import('./routes/curves'), { deps });
  await app.register(import('./routes/dashboard'), { deps });
  return app as unknown as FastifyInstance;
}

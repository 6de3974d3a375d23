// Liveness and readiness.
import type { FastifyBaseLogger } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Liveness, Readiness, type DependencyChecks } from '@graft/contract';
import { ApiError } from '../errors';
import type { ApiDeps } from '../deps';

const withTimeout = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms))]);

/** 'ok' or 'down' per dependency; why one is down goes to the log, not to the anonymous caller. */
export async function checkDependencies(deps: ApiDeps, log?: FastifyBaseLogger): Promise<DependencyChecks> {
  const [redis, s3] = await Promise.allSettled([
    withTimeout(deps.redis.ping(), 2_000, 'redis'),
    withTimeout(deps.storage.ping(), 3_000, 's3'),
  ]);
  const describe = (name: string, r: PromiseSettledResult<unknown>): 'ok' | 'down' => {
    if (r.status === 'fulfilled') return 'ok';
    const reason = (r.reason as Error)?.message || (r.reason as any)?.name || String(r.reason);
    log?.warn({ dependency: name, reason }, 'readiness check failed');
    return 'down';
  };
  return { redis: describe('redis', redis), s3: describe('s3', s3) };
}

const healthRoutes: FastifyPluginAsyncTypebox<{ deps: ApiDeps }> = async (app, opts) => {
  app.get('/healthz', { schema: { tags: ['service'], summary: 'Liveness', response: { 200: Liveness } } }, async () => ({ status: 'ok' as const }));

  app.get(
    '/readyz',
    {
      schema: { tags: ['service'], summary: 'Readiness: Redis and S3 answer (503 SERVICE_UNAVAILABLE with details.checks where not)', response: { 200: Readiness } },
    },
    async (req) => {
      const checks = await checkDependencies(opts.deps, req.log);
      const down = Object.entries(checks).filter(([, v]) => v !== 'ok').map(([k]) => k);
      if (down.length) throw new ApiError('SERVICE_UNAVAILABLE', `${down.join(' and ')} ${down.length > 1 ? 'are' : 'is'} down`, { checks });
      return { status: 'ok' as const, checks };
    },
  );
};

export default healthRoutes;

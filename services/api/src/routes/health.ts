// Liveness and readiness.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { ApiDeps } from '../deps';

const withTimeout = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms))]);

/** 'ok' or 'down' per dependency; why one is down goes to the log, not to the anonymous caller. */
export async function checkDependencies(deps: ApiDeps, log?: FastifyBaseLogger): Promise<Record<string, string>> {
  const [redis, s3] = await Promise.allSettled([
    withTimeout(deps.redis.ping(), 2_000, 'redis'),
    withTimeout(deps.storage.ping(), 3_000, 's3'),
  ]);
  const describe = (name: string, r: PromiseSettledResult<unknown>) => {
    if (r.status === 'fulfilled') return 'ok';
    const reason = (r.reason as Error)?.message || (r.reason as any)?.name || String(r.reason);
    log?.warn({ dependency: name, reason }, 'readiness check failed');
    return 'down';
  };
  return { redis: describe('redis', redis), s3: describe('s3', s3) };
}

export default async function healthRoutes(app: FastifyInstance, opts: { deps: ApiDeps }) {
  app.get('/healthz', { schema: { tags: ['service'], summary: 'Liveness' } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { tags: ['service'], summary: 'Readiness: Redis and S3 answer' } }, async (req, reply) => {
    const checks = await checkDependencies(opts.deps, req.log);
    const down = Object.entries(checks).filter(([, v]) => v !== 'ok').map(([k]) => k);
    if (down.length) {
      reply.code(503);
      return { status: 'unavailable', message: `${down.join(' and ')} ${down.length > 1 ? 'are' : 'is'} down`, checks };
    }
    return { status: 'ok', checks };
  });
}

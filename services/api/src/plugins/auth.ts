// Bearer API keys, each belonging to one tenant. Keys are compared in constant time and never logged. Requests
// with a wrong or missing key are counted per client address in Redis (so every API process shares the count);
// past GRAFT_AUTH_FAILURE_LIMIT in a minute the address gets 429 until the minute is over, right key or not, so
// that a guess cannot be told right or wrong while it is throttled.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from '../errors';

declare module 'fastify' {
  interface FastifyRequest {
    tenant: string;
  }
}

export const OPEN_TENANT = 'default';
const PUBLIC = /^\/(healthz|readyz|metrics|docs)(\/|$|\?)|^\/$|^\/(assets|ui)\//;

const digest = (s: string) => createHash('sha256').update(s).digest();

export interface AuthFailureLimit {
  redis: Redis;
  prefix: string;
  /** 0 = no limit. */
  perMinute: number;
}

const WINDOW_MS = 60_000;

/** Failed-key counts per client address and minute, in Redis. Where Redis is not ready, nothing is counted. */
function failureCounter(opts: AuthFailureLimit | undefined) {
  const keyOf = (ip: string) => {
    const window = Math.floor(Date.now() / WINDOW_MS);
    return { key: `${opts!.prefix}:authfail:${window}:${ip}`, retryS: Math.ceil(((window + 1) * WINDOW_MS - Date.now()) / 1000) };
  };
  const usable = () => !!opts && opts.perMinute > 0 && opts.redis.status === 'ready';
  return {
    /** Seconds until the address may try again, or 0 where it is not throttled. */
    async throttled(ip: string): Promise<number> {
      if (!usable()) return 0;
      const { key, retryS } = keyOf(ip);
      const n = Number((await opts!.redis.get(key).catch(() => null)) ?? 0);
      return n >= opts!.perMinute ? retryS : 0;
    },
    async count(ip: string): Promise<void> {
      if (!usable()) return;
      const { key } = keyOf(ip);
      await opts!.redis.multi().incr(key).pexpire(key, WINDOW_MS * 2).exec().catch(() => {});
    },
  };
}

export default fp(async function auth(
  app: FastifyInstance,
  opts: { keys: { tenant: string; key: string }[]; failures?: AuthFailureLimit },
) {
  const failures = failureCounter(opts.failures);
  const keys = opts.keys.map((k) => ({ tenant: k.tenant, hash: digest(k.key) }));
  if (!keys.length) app.log.warn('GRAFT_API_KEYS is empty: the API runs open, every request as tenant "default"');
  app.decorateRequest('tenant', '');

  const tenantOf = (req: FastifyRequest): string | null => {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) return null;
    const given = digest(m[1]);
    let found: string | null = null;
    // Compare with every key so the time does not depend on which one matches.
    for (const k of keys) if (timingSafeEqual(k.hash, given)) found = k.tenant;
    return found;
  };

  app.addHook('onRequest', async (req) => {
    if (!keys.length) {
      req.tenant = OPEN_TENANT;
      return;
    }
    if (PUBLIC.test(req.url)) return;
    const wait = await failures.throttled(req.ip);
    if (wait > 0) {
      throw new ApiError('RATE_LIMITED', `too many requests with a wrong or missing API key from this address; retry in ${wait} s`, {
        retryAfterSeconds: wait,
      });
    }
    const tenant = tenantOf(req);
    if (!tenant) {
      await failures.count(req.ip);
      throw new ApiError(
        'UNAUTHORIZED',
        req.headers.authorization ? 'the API key is not valid' : 'missing API key: send Authorization: Bearer <key>',
      );
    }
    req.tenant = tenant;
  });
});

// Bearer API keys, each belonging to one tenant. Keys are compared in constant time and never logged.
import { createHash, timingSafeEqual } from 'node:crypto';
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

export default fp(async function auth(app: FastifyInstance, opts: { keys: { tenant: string; key: string }[] }) {
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
    const tenant = tenantOf(req);
    if (!tenant) {
      throw new ApiError(
        'UNAUTHORIZED',
        req.headers.authorization ? 'the API key is not valid' : 'missing API key: send Authorization: Bearer <key>',
      );
    }
    req.tenant = tenant;
  });
});

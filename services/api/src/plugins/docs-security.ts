// Headers for the Swagger UI at /docs: the UI's content security policy (its own files and the hashes of its
// inline code only), no framing by any site, no content-type sniffing.
import type { FastifyReply, FastifyRequest } from 'fastify';

export const docsSecurity = {
  staticCSP: true,
  // The stock policy allows framing by the same origin, styles from any https host but not the style attributes
  // the UI sets, and upgrades requests to https, which breaks the UI served over plain http.
  transformStaticCSP: (header: string) =>
    header
      .replace(/frame-ancestors [^;]*;/, "frame-ancestors 'none';")
      .replace(/style-src [^;]*;/, "style-src 'self' 'unsafe-inline';")
      .replace(/\s*upgrade-insecure-requests;?/, '')
      .trim(),
  uiHooks: {
    onRequest(_req: FastifyRequest, reply: FastifyReply, done: () => void) {
      reply.header('x-content-type-options', 'nosniff');
      reply.header('x-frame-options', 'DENY');
      reply.header('referrer-policy', 'no-referrer');
      done();
    },
  },
};

// Maps every failure to the contract's error body with a code of the catalogue, and documents those answers.
import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { isOutageError } from '@graft/storage';
import { ApiError } from '../errors';
import { addErrorResponses } from '../schemas/responses';

function describeValidation(err: FastifyError): { message: string; fields: { field: string; message: string }[] } {
  const where = (err as any).validationContext as string | undefined;
  const fields = (err.validation ?? []).map((v: any) => {
    const parts = String(v.instancePath ?? '').split('/').filter(Boolean);
    if (v.keyword === 'additionalProperties') parts.push(v.params.additionalProperty);
    if (v.keyword === 'required') parts.push(v.params.missingProperty);
    const field = parts.length ? parts.join('.') : (where ?? 'body');
    let message: string;
    if (v.keyword === 'additionalProperties') message = 'is not a known field';
    else if (v.keyword === 'required') message = 'is required';
    else message = v.message ?? 'is invalid';
    return { field, message };
  });
  // Unions report one failure per branch; keep the first per field.
  const seen = new Set<string>();
  const unique = fields.filter((f) => (seen.has(f.field) ? false : (seen.add(f.field), true)));
  const prefix = where && where !== 'body' ? `${where}: ` : '';
  return { message: prefix + unique.map((f) => `${f.field} ${f.message}`).join('; '), fields: unique };
}

export default fp(async function errors(app: FastifyInstance) {
  // Registered before the routes: every documented route gets its error answers.
  app.addHook('onRoute', addErrorResponses);
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send(new ApiError('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`).toJSON());
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof ApiError) {
      const retryAfter = err.details?.retryAfterSeconds;
      if (err.status === 429 && typeof retryAfter === 'number') reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfter))));
      return reply.code(err.status).send(err.toJSON());
    }
    if (err.validation) {
      const { message, fields } = describeValidation(err);
      return reply.code(400).send(new ApiError('VALIDATION_FAILED', message, { fields }).toJSON());
    }
    const code = err.code ?? '';
    if (code === 'FST_ERR_CTP_BODY_TOO_LARGE' || code === 'FST_REQ_FILE_TOO_LARGE' || code === 'FST_FILES_LIMIT') {
      return reply.code(413).send(new ApiError('PAYLOAD_TOO_LARGE', `request body is too large: ${err.message}`).toJSON());
    }
    if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply
        .code(415)
        .send(new ApiError('UNSUPPORTED_MEDIA_TYPE', `unsupported Content-Type '${req.headers['content-type'] ?? ''}'`).toJSON());
    }
    if (code.startsWith('FST_ERR_CTP_') || code === 'FST_INVALID_MULTIPART_CONTENT_TYPE' || code === 'FST_PARTS_LIMIT') {
      return reply.code(400).send(new ApiError('VALIDATION_FAILED', `malformed request body: ${err.message}`).toJSON());
    }
    if (err.statusCode === 429) {
      return reply.code(429).send(new ApiError('RATE_LIMITED', err.message || 'too many requests').toJSON());
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send(new ApiError('VALIDATION_FAILED', err.message).toJSON());
    }
    if (isOutageError(err)) {
      req.log.warn({ err }, 'dependency unavailable');
      return reply
        .code(503)
        .send(new ApiError('SERVICE_UNAVAILABLE', 'a storage or queue dependency is unavailable; retry shortly (see /readyz)').toJSON());
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send(new ApiError('INTERNAL', 'internal error; see the server log').toJSON());
  });
});

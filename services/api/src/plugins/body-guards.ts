// What every request body goes through: JSON nested no deeper than GRAFT_MAX_JSON_DEPTH (checked on the text,
// before parsing), and a connection that is closed, not drained, when an answer goes out before its body was read
// (a refused key, an unknown model, a body over its limit): the rest of the body is never read.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from '../errors';
import { jsonDepth } from '../http/json-depth';

export default fp(async function bodyGuards(app: FastifyInstance, opts: { jsonDepth: number }) {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = body as string;
    if (jsonDepth(text, opts.jsonDepth) > opts.jsonDepth) {
      done(
        new ApiError('VALIDATION_FAILED', `body: JSON nests deeper than ${opts.jsonDepth} levels (GRAFT_MAX_JSON_DEPTH)`, {
          field: 'body',
          limit: opts.jsonDepth,
        }),
        undefined,
      );
      return;
    }
    parseJson(req, text, done);
  });

  app.addHook('onSend', async (req, reply) => {
    if (!req.raw.complete) reply.header('connection', 'close');
  });
});

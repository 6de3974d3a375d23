// What every request body goes through: JSON nested no deeper than GRAFT_MAX_JSON_DEPTH (checked on the text,
// before parsing), and a bounded drain when an answer goes out before its body was read (a refused key, an
// unknown model, a body over its limit): the rest of the body is read and thrown away for at most LINGER_MS,
// then the connection is closed, so that a body trickled on or too large to drain cannot hold it. (Closing at
// once, with body still arriving, makes the kernel reset the connection, and the client may lose the answer
// before it reads it.)
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from '../errors';
import { jsonDepth } from '../http/json-depth';

const LINGER_MS = 2_000;

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
    const socket = req.raw.socket;
    // (app.inject() has no real socket and nothing to drain.)
    if (req.raw.complete || typeof socket?.destroy !== 'function') return;
    // Node would close at once for a connection that is not kept alive; the timer below closes it instead.
    reply.header('connection', 'keep-alive');
    req.raw.resume();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    const done = () => clearTimeout(timer);
    req.raw.once('end', done);
    socket.once('close', done);
  });
});

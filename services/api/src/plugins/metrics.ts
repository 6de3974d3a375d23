// Prometheus metrics: request latency, predict latency, queue depth and jobs by state. /metrics needs no key, so
// nothing here names a tenant, a model or a job: routes are labelled by their pattern, predict latency by nothing.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import client from 'prom-client';
import type { TrainQueue } from '@graft/queue';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: { predictSeconds: client.Histogram; predictBatchSize: client.Histogram };
  }
}

export default fp(async function metrics(app: FastifyInstance, opts: { queue: TrainQueue }) {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'graft_api_' });
  const requests = new client.Histogram({
    name: 'graft_http_request_duration_seconds',
    help: 'HTTP request latency',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const predictSeconds = new client.Histogram({
    name: 'graft_predict_duration_seconds',
    help: 'Time to answer a /predict request (decode, inference, response)',
    buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const predictBatchSize = new client.Histogram({
    name: 'graft_predict_batch_size',
    help: 'Images per inference batch',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [registry],
  });
  new client.Gauge({
    name: 'graft_queue_jobs',
    help: 'Training jobs in the queue by BullMQ state',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      try {
        const counts = await opts.queue.counts();
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      } catch {
        // Redis down: the gauge keeps its last values; /readyz reports the outage.
      }
    },
  });
  app.decorate('metrics', { predictSeconds, predictBatchSize });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions?.url ?? 'unmatched';
    requests.observe({ method: req.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
});

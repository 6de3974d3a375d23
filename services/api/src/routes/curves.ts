// A job's loss and accuracy curves as an SVG picture, for READMEs, notebooks and the terminal's image viewers.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Binary, CurvesQuery, IdParams, type JobRecord } from '@graft/contract';
import type { ApiDeps } from '../deps';
import { notFound } from '../errors';
import { phaseName, renderCurves } from '../curves/render';

const pct = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : null);

/** The title and the line under it: which job, what it trained, where it stands. */
export function describeJob(job: JobRecord): { title: string; subtitle: string } {
  const cfg: Partial<JobRecord['config']> = job.config;
  const net = cfg.method === 'scratch' ? 'small convnet from scratch' : (cfg.backbone ?? 'unknown backbone');
  const size = typeof cfg.inputSize === 'number' ? ` @${cfg.inputSize}px` : '';
  const title = `${job.id} · ${net}${size}`;

  const bits: string[] = [job.state];
  if (cfg.method) bits.push(cfg.method.replace(/_/g, ' '));
  if (job.state === 'running' && job.phase) {
    bits.push(job.epoch !== null && job.epochs !== null ? `${phaseName(job.phase)}, epoch ${job.epoch}/${job.epochs}` : phaseName(job.phase));
  }
  const perPhase = new Map<string, number>();
  for (const r of job.history) perPhase.set(r.phase, (perPhase.get(r.phase) ?? 0) + 1);
  if (job.history.length) {
    const split = perPhase.size > 1 ? ` (${[...perPhase].map(([p, c]) => `${c} ${phaseName(p)}`).join(' + ')})` : '';
    bits.push(`${job.history.length} epoch${job.history.length === 1 ? '' : 's'}${split}`);
  }
  const testAcc = pct(job.test?.accuracy);
  const valAcc = pct(job.validation?.accuracy);
  if (testAcc) bits.push(`test accuracy ${testAcc}`);
  else if (valAcc) bits.push(`validation accuracy ${valAcc}`);
  return { title, subtitle: bits.join(' · ') };
}

const curvesRoutes: FastifyPluginAsyncTypebox<{ deps: ApiDeps }> = async (app, opts) => {
  const store = opts.deps.queue.jobs;

  app.get(
    '/v1/jobs/:id/curves.svg',
    {
      config: { errors: ['JOB_NOT_FOUND'] },
      schema: {
        tags: ['jobs'],
        summary: 'The loss and accuracy curves (train and validation, per phase) as an SVG picture',
        params: IdParams('job'),
        querystring: CurvesQuery,
        response: { 200: Binary(['image/svg+xml'], 'the picture') },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const q = req.query;
      const job = await store.getForTenant(req.tenant, id);
      if (!job) throw notFound('job', id);
      const svg = renderCurves({ ...describeJob(job), history: job.history, width: q.width, height: q.height });
      reply
        .header('content-type', 'image/svg+xml; charset=utf-8')
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'");
      return svg;
    },
  );
};

export default curvesRoutes;

// The worker's Prometheus metrics, served as text on GRAFT_WORKER_METRICS_PORT (/metrics): whether each
// dependency is up, whether the worker takes new jobs, and how many jobs it runs.
import http from 'node:http';
import type { Logger } from '@graft/config';
import type { DependencyState } from './dependency-monitor';

export interface WorkerMetricsSource {
  dependencies: () => DependencyState;
  acceptingJobs: () => boolean;
  runningJobs: () => number;
}

export function renderMetrics(src: WorkerMetricsSource): string {
  const deps = src.dependencies();
  const lines = [
    '# HELP graft_worker_dependency_up Whether the worker reaches a dependency (1) or not (0).',
    '# TYPE graft_worker_dependency_up gauge',
    ...Object.entries(deps).map(([name, s]) => `graft_worker_dependency_up{dependency="${name}"} ${s.up ? 1 : 0}`),
    '# HELP graft_worker_dependency_down_seconds How long a dependency has been down (0 while it is up).',
    '# TYPE graft_worker_dependency_down_seconds gauge',
    ...Object.entries(deps).map(
      ([name, s]) => `graft_worker_dependency_down_seconds{dependency="${name}"} ${s.up ? 0 : Math.round((Date.now() - s.since) / 100) / 10}`,
    ),
    '# HELP graft_worker_accepting_jobs Whether the worker takes new jobs (0 while a dependency is down or it stops).',
    '# TYPE graft_worker_accepting_jobs gauge',
    `graft_worker_accepting_jobs ${src.acceptingJobs() ? 1 : 0}`,
    '# HELP graft_worker_running_jobs Jobs the worker is running.',
    '# TYPE graft_worker_running_jobs gauge',
    `graft_worker_running_jobs ${src.runningJobs()}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** Serves /metrics; where the port is taken the worker goes on without it (logged). Answers a close function. */
export function serveMetrics(port: number, host: string, src: WorkerMetricsSource, log: Logger): () => Promise<void> {
  if (!port) return async () => {};
  const server = http.createServer((req, res) => {
    if (req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(renderMetrics(src));
  });
  server.on('error', (err) => log.warn({ err: err.message, port }, 'worker metrics not served'));
  server.listen(port, host, () => log.info({ url: `http://${host}:${port}/metrics` }, 'worker metrics served'));
  server.unref();
  let closed: Promise<void> | null = null;
  return () => (closed ??= new Promise((resolve) => server.close(() => resolve())));
}

// An HTTP proxy in front of a local server that holds each request for a while before passing it on: the latency of a
// store across a network, for benchmarks that read from or write to the embedded S3 server (bench/s3-read.ts,
// bench/ingest.ts).
import http from 'node:http';

/** An HTTP proxy to `port` that holds each request `latency` ms before passing it on. */
export async function delayingProxy(port: number, latency: () => number): Promise<{ port: number; close(): void }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const server = http.createServer((req, res) => {
    setTimeout(() => {
      const upstream = http.request({ host: '127.0.0.1', port, path: req.url, method: req.method, headers: req.headers, agent }, (r) => {
        res.writeHead(r.statusCode!, r.headers);
        r.pipe(res);
      });
      upstream.on('error', (err) => res.destroy(err));
      req.pipe(upstream);
    }, latency());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () => {
      server.close();
      agent.destroy();
    },
  };
}

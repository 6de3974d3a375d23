// An HTTP proxy in front of a local server that holds each request for a while before passing it on: the latency of a
// store across a network, for benchmarks that read from or write to the embedded S3 server (bench/s3-read.ts,
// bench/ingest.ts).
import http from 'node:http';
import { startEmbeddedS3, type EmbeddedS3 } from '@graft/devservers';
import { Storage } from '@graft/storage';

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

/**
 * The embedded S3 server on `dir` (npm start's) behind a delaying proxy, with a Storage on a bucket of its own through
 * that proxy: each request waits `latency` ms (0 until set).
 */
export async function slowEmbeddedS3(dir: string): Promise<{ storage: Storage; server: EmbeddedS3; setLatency(ms: number): void; close(): Promise<void> }> {
  const server = await startEmbeddedS3({ dir });
  let latency = 0;
  const proxy = await delayingProxy(server.port, () => latency);
  const storage = new Storage({ endpoint: `http://127.0.0.1:${proxy.port}`, bucket: 'graft', region: 'us-east-1', accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', forcePathStyle: true });
  const close = async () => {
    proxy.close();
    await server.stop();
  };
  try {
    await storage.ensureBucket();
  } catch (err) {
    await close();
    throw err;
  }
  return { storage, server, setLatency: (ms) => (latency = ms), close };
}

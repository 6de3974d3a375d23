// An embedded S3-protocol server (s3rver) in a child process, for `npm start` on one machine and for tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';

const require = createRequire(import.meta.url);

export interface EmbeddedS3 {
  endpoint: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, host);
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing answered on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Stops a child process: SIGTERM, then SIGKILL after a grace period. Safe to call twice. */
export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => (clearTimeout(t), resolve()));
    child.kill('SIGTERM');
  });
}

export async function startEmbeddedS3(opts: { dir: string; port?: number; host?: string }): Promise<EmbeddedS3> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port || (await freePort(host));
  fs.mkdirSync(opts.dir, { recursive: true });
  const bin = require.resolve('s3rver/bin/s3rver.js');
  // s3rver signs with an algorithm that OpenSSL 3 keeps in its legacy provider.
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', bin, '-d', opts.dir, '-a', host, '-p', String(port), '--silent', '--no-vhost-buckets'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code}): ${stderr}`))),
  );
  await Promise.race([waitForPort(port, host), exited]);
  exited.catch(() => {});
  return { endpoint: `http://${host}:${port}`, port, process: child, stop: () => stopChild(child) };
}

// An embedded S3-protocol server (s3rver) in a child process, for `npm start` on one machine and for tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import { freePort, stopChild, untilListening } from './process';

const require = createRequire(import.meta.url);

export interface EmbeddedS3 {
  endpoint: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
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
  await untilListening(child, 's3rver', port, host);
  return { endpoint: `http://${host}:${port}`, port, process: child, stop: () => stopChild(child) };
}

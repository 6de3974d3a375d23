// An embedded S3-protocol server (s3rver, see s3-server.ts) in a child process, for `npm start` on one machine and
// for tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort, stopChild, untilListening } from './process';

const require = createRequire(import.meta.url);

export interface EmbeddedS3 {
  endpoint: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

const SERVER = fileURLToPath(new URL('./s3-server.ts', import.meta.url));

/** An S3-protocol server on `dir`; every object in it stays whole whenever the server is stopped. */
export async function startEmbeddedS3(opts: { dir: string; port?: number; host?: string }): Promise<EmbeddedS3> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port || (await freePort(host));
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '--import', pathToFileURL(require.resolve('tsx')).href, SERVER, opts.dir, host, String(port)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await untilListening(child, 's3rver', port, host);
  return { endpoint: `http://${host}:${port}`, port, process: child, stop: () => stopChild(child) };
}

// A local redis-server in a child process: for `npm start` where nothing answers at REDIS_URL, and for tests.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { freePort, stopChild, untilListening } from './process';

export interface EmbeddedRedis {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export function redisServerAvailable(bin = 'redis-server'): boolean {
  return spawnSync(bin, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Starts redis-server with append-only persistence and `noeviction` (queues must never lose keys). */
export async function startRedisServer(opts: { dir: string; port?: number; host?: string; bin?: string }): Promise<EmbeddedRedis> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port || (await freePort(host));
  fs.mkdirSync(opts.dir, { recursive: true });
  const child = spawn(
    opts.bin ?? 'redis-server',
    ['--port', String(port), '--bind', host, '--dir', opts.dir, '--appendonly', 'yes', '--appendfsync', 'everysec',
      '--maxmemory-policy', 'noeviction', '--save', '', '--daemonize', 'no', '--protected-mode', 'no'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await untilListening(child, 'redis-server', port, host);
  return { url: `redis://${host}:${port}`, port, process: child, stop: () => stopChild(child) };
}

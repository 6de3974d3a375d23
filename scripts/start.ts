// `npm start`: the whole service on one machine. An embedded S3-protocol server unless S3_ENDPOINT is set;
// Redis at REDIS_URL, or else a local redis-server of its own with its data under the data folder; then the API
// and one worker.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigOrExit, createLogger } from '@graft/config';
import { redisServerAvailable, startEmbeddedS3, startRedisServer, stopChild } from '@graft/devservers';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A Redis URL without its password, for logs. */
const redacted = (url: string) => {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
};

const answers = (url: string) =>
  new Promise<boolean>((resolve) => {
    const u = new URL(url);
    const s = net.connect(Number(u.port || 6379), u.hostname);
    s.setTimeout(1_000, () => (s.destroy(), resolve(false)));
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

async function main() {
  const config = loadConfigOrExit();
  const log = createLogger(config.logLevel, 'graft');
  const env: Record<string, string> = { ...(process.env as Record<string, string>) };
  const stops: (() => Promise<void>)[] = [];

  // Redis first: its checks may stop the start before anything runs.
  if (config.redisUrlExplicit) {
    if (!(await answers(config.redisUrl))) {
      console.error(`Nothing answers at REDIS_URL (${redacted(config.redisUrl)}). Start that Redis, or unset REDIS_URL to run a local one.`);
      process.exit(2);
    }
    log.info({ url: redacted(config.redisUrl) }, 'using the Redis at REDIS_URL');
  } else {
    // Never another application's Redis by chance: without REDIS_URL, Graft runs its own, with its data in dataDir.
    if (!redisServerAvailable()) {
      console.error('redis-server is not installed (apt-get install redis-server); or set REDIS_URL to a Redis that Graft may use.');
      process.exit(2);
    }
    const dir = path.join(config.dataDir, 'redis');
    const redis = await startRedisServer({ dir });
    stops.push(redis.stop);
    env.REDIS_URL = redis.url;
    log.info({ url: redis.url, dir }, 'local redis-server started (set REDIS_URL to use another Redis)');
  }

  if (!config.s3.endpoint) {
    const s3 = await startEmbeddedS3({ dir: path.join(config.dataDir, 's3'), port: config.embeddedS3Port });
    stops.push(s3.stop);
    env.S3_ENDPOINT = s3.endpoint;
    log.info({ endpoint: s3.endpoint, dir: path.join(config.dataDir, 's3') }, 'embedded S3-protocol server started');
  }
  const children: ChildProcess[] = [];
  const run = (name: string, file: string) => {
    const child = spawn(process.execPath, [...process.execArgv, path.join(root, file)], { env, stdio: 'inherit' });
    child.on('exit', (code, sig) => {
      if (!stopping) {
        log.error({ service: name, code, sig }, 'service exited; stopping');
        void stop(1);
      }
    });
    children.push(child);
  };
  run('api', 'services/api/src/server.ts');
  run('worker', 'services/worker/src/main.ts');

  let stopping = false;
  const stop = async (code = 0) => {
    if (stopping) return;
    stopping = true;
    await Promise.all(children.map((c) => stopChild(c, 25_000)));
    for (const s of stops.reverse()) await s();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

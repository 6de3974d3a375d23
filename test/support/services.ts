// Per-test handles on the real Redis and S3 started by global-setup, each test with its own prefix and bucket.
import { inject } from 'vitest';
import { randomBytes } from 'node:crypto';
import { loadConfig, type GraftConfig } from '@graft/config';

export function uniqueName(stem: string): string {
  return `${stem}-${randomBytes(4).toString('hex')}`;
}

/** A Graft configuration pointing at the test servers, with a queue prefix and a bucket of its own. */
export function testConfig(env: Record<string, string> = {}): GraftConfig {
  return loadConfig({
    REDIS_URL: inject('redisUrl'),
    S3_ENDPOINT: inject('s3Endpoint'),
    S3_BUCKET: uniqueName('graft-test'),
    GRAFT_QUEUE_PREFIX: uniqueName('gt'),
    GRAFT_BACKBONES: new URL('../../../shared/models', import.meta.url).pathname,
    LOG_LEVEL: 'silent',
    ...env,
  });
}

/** The same configuration as environment variables, for services started as processes. */
export function configEnv(c: GraftConfig): Record<string, string> {
  return {
    REDIS_URL: c.redisUrl,
    S3_ENDPOINT: c.s3.endpoint!,
    S3_BUCKET: c.s3.bucket,
    GRAFT_QUEUE_PREFIX: c.queuePrefix,
    GRAFT_BACKBONES: c.backbones,
    GRAFT_DATA_DIR: c.dataDir,
  };
}

/**
 * The environment of services that use a test file's own redis-server and S3-protocol server (files that stop and
 * restart them): a bucket and queue prefix named after the file, the shared models, and one API key.
 */
export function ownServersEnv(servers: { redisUrl: string; s3Endpoint: string }, name: string, apiKey: string): Record<string, string> {
  return {
    REDIS_URL: servers.redisUrl,
    S3_ENDPOINT: servers.s3Endpoint,
    S3_BUCKET: uniqueName(`graft-${name}`),
    GRAFT_QUEUE_PREFIX: uniqueName(name),
    GRAFT_BACKBONES: loadConfig({ GRAFT_BACKBONES: new URL('../../../shared/models', import.meta.url).pathname }).backbones,
    GRAFT_API_KEYS: `${name}:${apiKey}`,
  };
}

// Starts the real services the tests talk to: a redis-server and an S3-protocol server (s3rver),
// each on a free loopback port with its data in a temporary folder, and stops them afterwards.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedS3, startRedisServer } from '@graft/devservers';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    s3Endpoint: string;
  }
}

export default async function setup(project: TestProject) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-test-'));
  const [redis, s3] = await Promise.all([
    startRedisServer({ dir: path.join(dir, 'redis') }),
    startEmbeddedS3({ dir: path.join(dir, 's3') }),
  ]);
  project.provide('redisUrl', redis.url);
  project.provide('s3Endpoint', s3.endpoint);
  return async () => {
    await Promise.all([redis.stop(), s3.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  };
}

// `npm start` as a newcomer runs it: the whole service from scripts/start.ts, with a Redis of its own unless
// REDIS_URL names one, and a log line that says which.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '@graft/devservers';
import { runService, waitFor, type Service } from './support/processes';

describe('npm start', () => {
  const dirs: string[] = [];
  const services: Service[] = [];
  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  const start = (env: Record<string, string>) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-start-'));
    dirs.push(dir);
    const svc = runService('scripts/start.ts', { GRAFT_DATA_DIR: dir, REDIS_URL: '', S3_ENDPOINT: '', ...env });
    services.push(svc);
    return { svc, dir };
  };

  it("runs a Redis of its own, with its data in the data folder, and never another application's by chance", async () => {
    const port = await freePort();
    const { svc, dir } = start({ PORT: String(port) });
    const ready = await waitFor(
      'the API to be ready',
      async () => {
        if (svc.process.exitCode !== null) throw new Error(`npm start exited:\n${svc.output()}`);
        const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
        return r?.ok ? r.json() : null;
      },
      90_000,
      300,
    );
    expect(ready.checks).toEqual({ redis: 'ok', s3: 'ok' });
    const line = svc.output().split('\n').find((l) => l.includes('local redis-server started'));
    expect(line, svc.output()).toBeDefined();
    const url = /redis:\/\/127\.0\.0\.1:(\d+)/.exec(line!)!;
    expect(Number(url[1])).not.toBe(6379);
    expect(line).toContain(path.join(dir, 'redis'));
    expect(fs.existsSync(path.join(dir, 'redis'))).toBe(true);
  });

  it('stops at once, naming REDIS_URL, when the Redis it names does not answer', async () => {
    const dead = await freePort();
    const { svc } = start({ PORT: String(await freePort()), REDIS_URL: `redis://:secret@127.0.0.1:${dead}` });
    const code = await new Promise<number | null>((resolve) => svc.process.once('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(svc.output()).toContain(`Nothing answers at REDIS_URL (redis://:***@127.0.0.1:${dead}`);
    expect(svc.output()).not.toContain('secret');
  });
});

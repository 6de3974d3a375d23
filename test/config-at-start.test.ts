// A bad environment variable stops each service as it starts: exit code 2 and a message naming the variable,
// before it connects to anything (no Redis or S3 is given here, and none is needed to fail).
import { describe, expect, it } from 'vitest';
import { runService } from './support/processes';

async function exitOf(file: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const svc = runService(file, { REDIS_URL: '', S3_ENDPOINT: '', ...env });
  const code = await new Promise<number | null>((resolve) => svc.process.once('exit', (c) => resolve(c)));
  return { code, output: svc.output() };
}

describe('a bad variable stops a service at start, naming it', () => {
  it('the API: GRAFT_TRAIN_THREADS=abc and GRAFT_TF_BACKEND=nope, both named in one message', async () => {
    const { code, output } = await exitOf('services/api/src/server.ts', { GRAFT_TRAIN_THREADS: 'abc', GRAFT_TF_BACKEND: 'nope' });
    expect(code, output).toBe(2);
    expect(output).toContain('Invalid configuration');
    expect(output).toContain('GRAFT_TRAIN_THREADS="abc"');
    expect(output).toContain('GRAFT_TF_BACKEND="nope"');
  });

  it('the worker: GRAFT_FROZEN_ENGINE=fast', async () => {
    const { code, output } = await exitOf('services/worker/src/main.ts', { GRAFT_FROZEN_ENGINE: 'fast' });
    expect(code, output).toBe(2);
    expect(output).toContain('GRAFT_FROZEN_ENGINE="fast": expected one of auto, onnxruntime, tfjs');
  });

  it('npm start: GRAFT_S3_PORT=abc, before it starts any server', async () => {
    const { code, output } = await exitOf('scripts/start.ts', { GRAFT_S3_PORT: 'abc' });
    expect(code, output).toBe(2);
    expect(output).toContain('GRAFT_S3_PORT="abc"');
    expect(output).not.toContain('redis-server started');
  });
});

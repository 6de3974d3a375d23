// Runs Graft's services as real processes for end-to-end tests.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort, stopChild } from '@graft/devservers';

export const root = path.resolve(import.meta.dirname, '..', '..');

export interface Service {
  process: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function runService(file: string, env: Record<string, string>): Service {
  let out = '';
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, file)], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-200_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return {
    process: child,
    output: () => out,
    stop: (signal) => {
      if (signal === 'SIGKILL') {
        child.kill('SIGKILL');
        return new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
      }
      return stopChild(child, 20_000);
    },
  };
}

export async function startApi(env: Record<string, string>): Promise<Service & { url: string }> {
  const port = await freePort();
  const svc = runService('services/api/src/server.ts', { ...env, HOST: '127.0.0.1', PORT: String(port) });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (svc.process.exitCode !== null) throw new Error(`api exited:\n${svc.output()}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`api did not start:\n${svc.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { ...svc, url };
}

export async function waitFor<T>(what: string, f: () => Promise<T | null | undefined | false>, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// What the development servers share: a free loopback port, waiting until a port answers, stopping a child.
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';

/** A port that nothing listens on now (the OS picks it). */
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

/**
 * Waits until a server child answers on its port; rejects, with the end of its stderr, where it exits first.
 * `what` names the server in errors.
 */
export async function untilListening(child: ChildProcess, what: string, port: number, host: string): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (e) => reject(new Error(`${what} could not start: ${e.message}`)));
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}): ${stderr}`)));
  });
  failed.catch(() => {});
  await Promise.race([waitForPort(port, host), failed]);
}

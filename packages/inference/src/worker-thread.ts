// Worker threads that run Graft's TypeScript modules. A worker does not inherit the module loader of its parent,
// so it is started from a small script that registers the tsx loader (where tsx is installed) and then imports
// the entry module. WorkerRpc (below) is the one request/response channel to such a thread, used by the ONNX
// Runtime session host here and by the training engine's frozen-model sessions and gradient replicas.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const BOOTSTRAP = `
const { workerData, parentPort } = require('node:worker_threads');
(async () => {
  if (workerData.tsx) {
    const { register } = await import(workerData.tsx);
    register();
  }
  await import(workerData.entry);
})().catch((err) => parentPort.postMessage({ type: 'fatal', message: String((err && err.stack) || err) }));
`;

/** The ESM entry of tsx's register API, where tsx is installed. */
function tsxApiUrl(): string | null {
  try {
    const pkg = createRequire(import.meta.url).resolve('tsx/package.json');
    const api = join(dirname(pkg), 'dist', 'esm', 'api', 'index.mjs');
    return existsSync(api) ? pathToFileURL(api).href : null;
  } catch {
    return null;
  }
}

/**
 * Starts a worker thread running the module at entry. A failure to load it arrives as a message
 * `{type: 'fatal', message}`.
 */
export function startWorker(entry: URL): Worker {
  return new Worker(BOOTSTRAP, { eval: true, workerData: { entry: entry.href, tsx: tsxApiUrl() } });
}

/**
 * Starts a worker thread and waits for its start-up exchange: `step` sees each of its messages (a 'fatal' one
 * aside) and returns true on the one that says the worker is ready, which is resolved. A 'fatal' message, an
 * error or an exit before that terminates the worker and rejects. The worker is then unref'd: an idle worker
 * does not keep the process alive (its owner refs it while requests are pending).
 */
export async function startWorkerWhenReady<M extends { type: string }>(
  entry: URL,
  step: (message: M, worker: Worker) => boolean,
): Promise<{ worker: Worker; last: M }> {
  const worker = startWorker(entry);
  try {
    const last = await new Promise<M>((resolve, reject) => {
      const done = (f: () => void) => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        f();
      };
      const onMessage = (m: M) => {
        if (m.type === 'fatal') done(() => reject(new Error((m as unknown as { message: string }).message)));
        else if (step(m, worker)) done(() => resolve(m));
      };
      const onError = (err: Error) => done(() => reject(err));
      const onExit = (code: number) => done(() => reject(new Error(`the worker thread exited (code ${code})`)));
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
    worker.unref();
    return { worker, last };
  } catch (err) {
    await worker.terminate();
    throw err;
  }
}

/** T without key K, in each member of a union. */
type Without<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * Requests to a worker thread and their replies. The worker (started from `entry`) says `{type: 'ready'}` once;
 * then each request posted here carries an `id`, and the worker's message with that id settles it: a reply of
 * type 'error' rejects with an Error of its name and message, any other resolves with the whole message.
 * A `{type: 'fatal', message}` from the worker, an 'error' event or an exit fails every pending request and
 * every later one. The thread keeps the process alive only while a request is pending. Used by the ONNX Runtime
 * session host, the training engine's frozen-model sessions and its gradient replicas.
 */
export class WorkerRpc<Req extends { type: string; id?: number }> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private failed: Error | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  /** Called when the last pending request settles while closing. */
  private drained: (() => void) | null = null;

  private constructor(
    private readonly worker: Worker,
    /** What the thread is, for error messages ('the ONNX Runtime worker thread'). */
    private readonly what: string,
    /** How long close() lets requests in progress finish before it stops the thread. */
    private readonly closeGraceMs: number,
  ) {
    worker.on('message', (m: { type: string; id?: number; name?: string; message?: string }) => {
      if (m.type === 'fatal') return this.fail(new Error(`${what} failed: ${m.message}`));
      if (m.id === undefined) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) {
        worker.unref();
        this.drained?.();
      }
      if (m.type === 'error') p.reject(Object.assign(new Error(m.message), { name: m.name ?? 'Error' }));
      else p.resolve(m);
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`${what} exited (code ${code})`));
    });
  }

  /** Starts the worker thread at entry and waits for its 'ready'; rejects where it cannot start. */
  static async start<Req extends { type: string; id?: number }>(entry: URL, what: string, opts: { closeGraceMs?: number } = {}): Promise<WorkerRpc<Req>> {
    const { worker } = await startWorkerWhenReady<{ type: string }>(entry, (m) => m.type === 'ready');
    return new WorkerRpc<Req>(worker, what, opts.closeGraceMs ?? 10_000);
  }

  /** Why the thread cannot take requests (it failed, exited or was closed); null while it can. */
  get failure(): Error | null {
    return this.failed;
  }

  /** Requests not answered yet. */
  get load(): number {
    return this.pending.size;
  }

  /** Posts a request (its id is added) and resolves with the reply; `transfer` moves those buffers to the thread. */
  request<T>(msg: Without<Req, 'id'>, transfer: readonly ArrayBuffer[] = []): Promise<T> {
    if (this.closing) return Promise.reject(new Error(`${this.what} was closed`));
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.ref();
      this.worker.postMessage({ ...msg, id }, transfer as ArrayBuffer[]);
    });
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.worker.unref();
    this.drained?.();
  }

  /**
   * Stops the thread. Requests in progress may finish first (up to the grace period): terminating a thread in the
   * middle of a native call (an ONNX Runtime run) aborts the whole process. Later requests, and those still
   * pending after the grace period, reject. May be called more than once.
   */
  async close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      if (this.pending.size && !this.failed) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => (this.drained = resolve)),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, this.closeGraceMs))),
        ]);
        clearTimeout(timer);
      }
      this.closed = true;
      this.fail(new Error(`${this.what} was closed`));
      await this.worker.terminate();
    })();
    return this.closing;
  }
}

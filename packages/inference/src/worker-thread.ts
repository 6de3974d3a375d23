// Worker threads that run Graft's TypeScript modules. A worker does not inherit the module loader of its parent,
// so it is started from a small script that registers the tsx loader (where tsx is installed) and then imports
// the entry module. Used by the ONNX Runtime session host here and by the training engine's worker threads.
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

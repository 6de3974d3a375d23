// Worker threads that run this package's TypeScript modules. A worker does not inherit the module loader of
// its parent, so it is started from a small script that registers the tsx loader (where tsx is installed) and
// then imports the entry module.
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

// Starts the API: configuration, clients, listen, graceful close on SIGTERM/SIGINT.
import { loadConfigOrExit, createLogger } from '@graft/config';
import { setHeapGrowth } from '@graft/config/heap';
import { initBackend } from '@graft/vision';
import { createDeps } from './deps';
import { buildApp } from './app';

async function main() {
  const config = loadConfigOrExit();
  setHeapGrowth(config.heapGrowthPercent);
  const log = createLogger(config.logLevel, 'graft-api');
  const deps = createDeps(config);
  await deps.storage.ensureBucket().catch((err) => log.warn({ err: err.message }, 'could not ensure the bucket yet'));
  await initBackend({ prefer: config.training.tfBackend ?? undefined, syncReads: config.testing.syncReads, log: (obj, msg) => log.info(obj, msg) });
  const app = await buildApp(deps, { logger: log });
  await app.listen({ host: config.host, port: config.port });
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await app.close();
    await deps.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

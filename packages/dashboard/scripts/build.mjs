// Builds the dashboard into dist/ with Vite. Runs at install time (the root "prepare" script), so an install
// where the build tools are missing (`npm ci --omit=optional` leaves out Vite's native bundler) skips the build
// with a notice instead of failing the install; the API then answers / with a page that tells how to build it.
// A real build error (in the dashboard's own code) still fails.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MISSING_TOOL = /Cannot find (module|package)|native binding|ERR_MODULE_NOT_FOUND|MODULE_NOT_FOUND/;

const skip = (err) => {
  console.warn(
    `@graft/dashboard: not built, a build tool is missing (${String(err?.message ?? err).split('\n')[0]}).\n` +
      'Install all dependencies (npm ci), then run: npm run build -w @graft/dashboard',
  );
  process.exit(0);
};

let vite;
try {
  vite = await import('vite');
} catch (err) {
  skip(err);
}

try {
  await vite.build({ root, configFile: path.join(root, 'vite.config.ts'), logLevel: process.env.CI ? 'warn' : 'info' });
} catch (err) {
  if (MISSING_TOOL.test(`${err?.code ?? ''} ${err?.message ?? ''}`) && !String(err?.message).includes(root)) skip(err);
  throw err;
}

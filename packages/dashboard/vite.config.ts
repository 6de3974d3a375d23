// Vite build of the dashboard: Preact with the automatic JSX runtime, hashed assets under /assets/.
// `npm run dev -w @graft/dashboard` serves it with hot reload and proxies the API (GRAFT_URL, default
// http://127.0.0.1:8080).
import { defineConfig } from 'vite';

const api = process.env.GRAFT_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  publicDir: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 300,
  },
  server: {
    proxy: Object.fromEntries(['/v1', '/docs', '/healthz', '/readyz'].map((p) => [p, { target: api, changeOrigin: true }])),
  },
});

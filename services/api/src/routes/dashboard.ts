// The web dashboard: its built files (packages/dashboard/dist) at / and /ui/* (client-side routes, all answered
// with index.html) and /assets/*, and the dataset thumbnails it shows. Where the dashboard is not built, / and
// /ui/* answer 503 with a page that tells how to build it; the API around it works either way.
import fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import fastifyStatic from '@fastify/static';
import { IdParams, Thumbnails as ThumbnailsSchema, ThumbnailsQuery, type DatasetIndex, type DatasetManifest, type Split, type Thumbnail } from '@graft/contract';
import { buildCommand, distDir as builtDistDir } from '@graft/dashboard';
import { keys } from '@graft/storage';
import { spread } from '@graft/vision';
import type { ApiDeps } from '../deps';
import { ApiError, notFound } from '../errors';
import { Lru, Thumbnails } from '../datasets/thumbnails';

const SPLITS: readonly Split[] = ['train', 'validation', 'test'];

/** At most this many thumbnails in one answer; the per-class limit shrinks for datasets with many classes. */
const MAX_THUMBNAILS = 240;
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function notBuiltPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Graft: the dashboard is not built</title>
<style>
body{font:15px/1.55 system-ui,-apple-system,"Segoe UI",sans-serif;color:#0f172a;background:#f4f6f9;margin:0}
main{max-width:640px;margin:12vh auto;background:#fff;border:1px solid #e3e8ef;border-radius:10px;padding:28px 32px}
h1{font-size:20px;margin:0 0 12px}code{font-family:ui-monospace,Menlo,Consolas,monospace;background:#f1f5f9;padding:2px 6px;border-radius:4px}
a{color:#2563eb}
</style>
</head>
<body>
<main>
<h1>The dashboard is not built</h1>
<p>The Graft API is running, but the web dashboard's files are missing (<code>packages/dashboard/dist</code>).</p>
<p>Build them with <code>${escapeHtml(buildCommand)}</code>, or run <code>npm ci</code>, which builds them, then reload this page.</p>
<p>The API works without them: see <a href="/docs">/docs</a>.</p>
</main>
</body>
</html>
`;
}

const dashboardRoutes: FastifyPluginAsyncTypebox<{ deps: ApiDeps; distDir?: string }> = async (app, opts) => {
  const { storage } = opts.deps;
  const dist = opts.distDir ?? builtDistDir;
  const indexFile = path.join(dist, 'index.html');
  if (!existsSync(indexFile)) app.log.warn({ dist }, `the dashboard is not built; / answers 503 until \`${buildCommand}\` has run`);

  // Hashed file names: cached for a year, never revalidated.
  await app.register(fastifyStatic, {
    root: path.join(dist, 'assets'),
    prefix: '/assets/',
    decorateReply: false,
    index: false,
    immutable: true,
    maxAge: '365d',
    suppressWarning: true,
  });

  const page = async (_req: unknown, reply: FastifyReply) => {
    reply.headers(PAGE_HEADERS);
    let html: Buffer;
    try {
      html = await fs.readFile(indexFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return reply.code(503).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(notBuiltPage());
    }
    return reply.header('cache-control', 'no-cache').type('text/html; charset=utf-8').send(html);
  };
  app.get('/', { schema: { hide: true } }, page);
  app.get('/ui/*', { schema: { hide: true } }, page);

  // Dataset images are stored under their content hash, so an index and a thumbnail never change.
  const indexes = new Lru<DatasetIndex>(32);
  const thumbs = new Thumbnails(storage);

  app.get(
    '/v1/datasets/:id/thumbnails',
    {
      config: { errors: ['DATASET_NOT_FOUND'] },
      schema: {
        tags: ['datasets'],
        summary: 'A few small images of each class, as JPEG data URLs',
        description:
          'Square JPEG thumbnails (`size` px, default 96) of up to `limit` images per class (default 6), spread over the class, for previews.',
        params: IdParams('ds'),
        querystring: ThumbnailsQuery,
        response: { 200: ThumbnailsSchema },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const q = req.query;
      const manifest = await storage.getJsonOrNull<DatasetManifest>(keys.datasetManifest(req.tenant, id));
      if (!manifest) throw notFound('dataset', id);
      if (q.class !== undefined && !manifest.classes.includes(q.class)) {
        throw new ApiError('VALIDATION_FAILED', `class: dataset '${id}' has no class '${q.class}'`, { field: 'class' });
      }
      const ik = keys.datasetIndex(req.tenant, id);
      let index = indexes.get(ik);
      if (!index) {
        index = await storage.getJson<DatasetIndex>(ik);
        indexes.set(ik, index);
      }
      const size = q.size ?? 96;
      const classes = q.class !== undefined ? [q.class] : manifest.classes;
      const perClass = Math.max(1, Math.min(q.limit ?? 6, Math.floor(MAX_THUMBNAILS / classes.length)));
      const splitRank = (s: Split) => SPLITS.indexOf(s);

      const chosen: DatasetIndex['images'] = [];
      for (const c of classes) {
        const all = index.images
          .filter((im) => im.label === c && (!q.split || im.split === q.split))
          .sort((a, b) => splitRank(a.split) - splitRank(b.split));
        // Spread over the class rather than its first few files.
        chosen.push(...spread(all, perClass));
      }

      const items: Thumbnail[] = [];
      const CONCURRENCY = 4;
      let next = 0;
      const results = new Array<(typeof items)[number] | null>(chosen.length).fill(null);
      await Promise.all(
        Array.from({ length: Math.min(CONCURRENCY, chosen.length) }, async () => {
          while (next < chosen.length) {
            const i = next++;
            const im = chosen[i]!;
            try {
              results[i] = { imageId: im.id, path: im.path, class: im.label, split: im.split, width: im.width, height: im.height, image: await thumbs.dataUrl(im.key, size) };
            } catch (err) {
              req.log.warn({ err: (err as Error).message, key: im.key }, 'thumbnail failed');
            }
          }
        }),
      );
      for (const r of results) if (r) items.push(r);
      reply.header('cache-control', 'private, max-age=300');
      return { datasetId: id, size, items };
    },
  );
};

export default dashboardRoutes;

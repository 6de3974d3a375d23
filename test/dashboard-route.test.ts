// The dashboard's route in the API: its files at /, /ui/* and /assets/*, a clear page where it is not built,
// the API's own paths left alone, and dataset thumbnails per tenant.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { buildApp } from '../services/api/src/app';
import { createDeps, type ApiDeps } from '../services/api/src/deps';
import errors from '../services/api/src/plugins/errors';
import auth from '../services/api/src/plugins/auth';
import dashboardRoutes from '../services/api/src/routes/dashboard';
import { testConfig } from './support/services';
import { patternDataset, zipOf } from './support/images';

const A = 'dash-key-alpha-0123456789';
const B = 'dash-key-beta-0123456789';
const H = (key: string) => ({ authorization: `Bearer ${key}` });

describe('dashboard route', () => {
  let deps: ApiDeps;
  let app: FastifyInstance;
  let dist: string;
  let datasetId: string;

  /** The dashboard route alone, on a dist folder of the test's making. */
  const bare = async (distDir: string) => {
    const f = Fastify();
    await f.register(errors);
    await f.register(auth, { keys: [{ tenant: 'alpha', key: A }] });
    await f.register(dashboardRoutes, { deps, distDir });
    return f;
  };

  beforeAll(async () => {
    deps = createDeps(testConfig({ GRAFT_API_KEYS: `alpha:${A},beta:${B}` }));
    await deps.storage.ensureBucket();
    app = await buildApp(deps);
    dist = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-dash-'));
    fs.mkdirSync(path.join(dist, 'assets'));
    fs.writeFileSync(path.join(dist, 'index.html'), '<!doctype html><title>Graft</title><div id="app"></div>');
    fs.writeFileSync(path.join(dist, 'assets', 'index-abc123.js'), 'console.log("graft");');
    const zip = await zipOf(await patternDataset({ train: 7, validation: 3, test: 2 }, 5));
    const up = await app.inject({ method: 'POST', url: '/v1/datasets?name=thumbs', headers: { ...H(A), 'content-type': 'application/zip' }, payload: zip });
    expect(up.statusCode).toBe(201);
    datasetId = up.json().id;
  });
  afterAll(async () => {
    await app?.close();
    await deps?.close();
    fs.rmSync(dist, { recursive: true, force: true });
  });

  it('serves index.html at / and at every /ui/ path, without a key, and the hashed assets', async () => {
    const f = await bare(dist);
    try {
      for (const url of ['/', '/ui/', '/ui/jobs/job_abc', '/ui/datasets/ds_x?tab=1']) {
        const r = await f.inject(url);
        expect(r.statusCode, url).toBe(200);
        expect(r.headers['content-type']).toMatch(/^text\/html/);
        expect(r.body).toContain('<div id="app"></div>');
        expect(r.headers['cache-control']).toBe('no-cache');
        expect(r.headers['content-security-policy']).toContain("default-src 'self'");
      }
      const js = await f.inject('/assets/index-abc123.js');
      expect(js.statusCode).toBe(200);
      expect(js.headers['content-type']).toMatch(/javascript/);
      expect(js.headers['cache-control']).toContain('immutable');
      expect(js.body).toBe('console.log("graft");');
      expect((await f.inject('/assets/nope.js')).statusCode).toBe(404);
      expect((await f.inject('/assets/../index.html')).statusCode).not.toBe(200);
    } finally {
      await f.close();
    }
  });

  it('answers / with a 503 page that tells how to build the dashboard where it is not built', async () => {
    const f = await bare(path.join(dist, 'missing'));
    try {
      for (const url of ['/', '/ui/jobs']) {
        const r = await f.inject(url);
        expect(r.statusCode).toBe(503);
        expect(r.headers['content-type']).toMatch(/^text\/html/);
        expect(r.body).toContain('npm run build -w @graft/dashboard');
        expect(r.body).toContain('/docs');
      }
      expect((await f.inject('/assets/index-abc123.js')).statusCode).toBe(404);
    } finally {
      await f.close();
    }
  });

  it("leaves the API's own paths alone", async () => {
    expect((await app.inject('/healthz')).json()).toEqual({ status: 'ok' });
    expect((await app.inject('/readyz')).statusCode).toBe(200);
    expect((await app.inject('/metrics')).headers['content-type']).toMatch(/^text\/plain/);
    const doc = (await app.inject('/docs/json')).json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toContain('/v1/datasets/{id}/thumbnails');
    expect(Object.keys(doc.paths)).not.toContain('/ui/*');
    expect((await app.inject('/docs')).statusCode).toBeLessThan(400);
    const noKey = await app.inject('/v1/jobs');
    expect(noKey.statusCode).toBe(401);
    expect(noKey.json().error.code).toBe('UNAUTHORIZED');
    const unknown = await app.inject({ url: '/v1/nothing-here', headers: H(A) });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('NOT_FOUND');
    // The page itself needs no key; the API calls it makes do.
    expect((await app.inject('/')).headers['content-type']).toMatch(/^text\/html/);
  });

  it('gives square JPEG thumbnails of each class, spread over the class, per split and size asked', async () => {
    const r = await app.inject({ url: `/v1/datasets/${datasetId}/thumbnails?limit=3`, headers: H(A) });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.datasetId).toBe(datasetId);
    expect(body.items.map((t: any) => t.class).sort()).toEqual(['dots', 'dots', 'dots', 'stripes', 'stripes', 'stripes']);
    for (const t of body.items) {
      expect(t.image).toMatch(/^data:image\/jpeg;base64,/);
      const meta = await sharp(Buffer.from(t.image.split(',')[1], 'base64')).metadata();
      expect(meta.format).toBe('jpeg');
      expect([meta.width, meta.height]).toEqual([96, 96]);
      expect([t.width, t.height]).toEqual([64, 64]);
    }
    // Spread over the class: more than one split shows up among three of twelve images.
    expect(new Set(body.items.filter((t: any) => t.class === 'dots').map((t: any) => t.split)).size).toBeGreaterThan(1);

    const one = (await app.inject({ url: `/v1/datasets/${datasetId}/thumbnails?class=stripes&split=test&limit=24&size=48`, headers: H(A) })).json();
    expect(one.items).toHaveLength(2);
    expect(one.items.every((t: any) => t.class === 'stripes' && t.split === 'test')).toBe(true);
    const small = await sharp(Buffer.from(one.items[0].image.split(',')[1], 'base64')).metadata();
    expect([small.width, small.height]).toEqual([48, 48]);

    const bad = await app.inject({ url: `/v1/datasets/${datasetId}/thumbnails?class=cats`, headers: H(A) });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.details.field).toBe('class');
    expect((await app.inject({ url: `/v1/datasets/${datasetId}/thumbnails?limit=99`, headers: H(A) })).statusCode).toBe(400);
  });

  it("keeps one tenant's thumbnails from another", async () => {
    const other = await app.inject({ url: `/v1/datasets/${datasetId}/thumbnails`, headers: H(B) });
    expect(other.statusCode).toBe(404);
    expect(other.json().error.code).toBe('DATASET_NOT_FOUND');
    expect((await app.inject(`/v1/datasets/${datasetId}/thumbnails`)).statusCode).toBe(401);
  });
});

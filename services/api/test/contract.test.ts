// The API's contract as it documents it: every route of the OpenAPI document (/docs) has a response schema for
// its success and its errors, every error status carries the catalogue's error body, and docs/api.md is the
// document as the code makes it today. Answers are serialized by their schemas, which drop what they do not name:
// every field the service stores must come back.
import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS, ERROR_CODES, type EvalMetrics, type HealthReport, type ModelRecord } from '@graft/contract';
import { keys } from '@graft/storage';
import { buildApp } from '../src/app';
import { createDeps, type ApiDeps } from '../src/deps';
import { openApiDocument, type OpenApiDocument } from '../src/openapi/document';
import { apiMarkdown } from '../src/openapi/markdown';
import { testConfig } from '../../../test/support/services';
import { patternDataset, zipOf } from '../../../test/support/images';

const API_DOC = new URL('../../../docs/api.md', import.meta.url);

/** Each route (METHOD path) and what its documented answers lack. */
function undocumented(doc: OpenApiDocument): string[] {
  const problems: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const where = `${method.toUpperCase()} ${path}`;
      const statuses = Object.keys(op.responses ?? {});
      const ok = statuses.filter((s) => /^2\d\d$/.test(s));
      if (!ok.length) problems.push(`${where}: no success response`);
      for (const s of ok) {
        const r = op.responses[s]!;
        if (s !== '204' && !Object.values(r.content ?? {}).some((c) => c.schema)) problems.push(`${where}: ${s} has no schema`);
      }
      const errors = statuses.filter((s) => /^[45]\d\d$/.test(s));
      if (!errors.some((s) => s.startsWith('4')) || !errors.some((s) => s.startsWith('5'))) problems.push(`${where}: no error responses`);
      for (const s of errors) {
        const schema = op.responses[s]!.content?.['application/json']?.schema;
        if (!schema?.properties?.error) problems.push(`${where}: ${s} is not the error body`);
      }
    }
  }
  return problems;
}

describe('the API contract', () => {
  let doc: OpenApiDocument;
  beforeAll(async () => {
    doc = await openApiDocument();
  });

  it('documents a response schema and the error answers of every route', () => {
    expect(Object.keys(doc.paths).length).toBeGreaterThan(20);
    expect(undocumented(doc)).toEqual([]);
  });

  it('finds a route without a response schema, or without error answers', () => {
    const bare: OpenApiDocument = {
      info: doc.info,
      paths: {
        '/v1/things': { get: { responses: { 200: { description: 'Default Response' } } } },
        '/v1/other': { post: { responses: { 201: { content: { 'application/json': { schema: { type: 'object' } } } } } } },
      },
    };
    expect(undocumented(bare)).toEqual([
      'GET /v1/things: 200 has no schema',
      'GET /v1/things: no error responses',
      'POST /v1/other: no error responses',
    ]);
  });

  it("names each route's own error codes with their statuses", () => {
    const del = doc.paths['/v1/datasets/{id}']!.delete!;
    expect(del.responses['404']!.description).toContain('DATASET_NOT_FOUND');
    expect(del.responses['409']!.description).toContain('DATASET_IN_USE');
    expect(del.responses['401']!.description).toBe('UNAUTHORIZED');
    const codes = doc.paths['/v1/jobs']!.post!.responses['400']!.content!['application/json']!.schema.properties.error.properties.code;
    expect(codes.enum).toEqual(ERROR_CODES);
  });

  it('keeps a closed catalogue: each code once, with a status of 4xx or 5xx where it is answered over HTTP', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const code of ERROR_CODES) {
      const { status, meaning } = ERRORS[code];
      expect(status === null || (status >= 400 && status < 600), code).toBe(true);
      expect(meaning.length, code).toBeGreaterThan(10);
    }
    expect(ERROR_CODES).not.toContain('UPLOAD_ABORTED');
    expect(ERROR_CODES).not.toContain('SINGLE_CLASS');
  });

  it('has docs/api.md as the code documents the API today (npm run docs:api writes it)', () => {
    const written = fs.existsSync(API_DOC) ? fs.readFileSync(API_DOC, 'utf8') : '';
    expect(written === apiMarkdown(doc), 'docs/api.md is out of date: run npm run docs:api').toBe(true);
    expect(written).toContain('## Error catalogue');
    for (const code of ERROR_CODES) expect(written).toContain(`| \`${code}\` |`);
  });
});

/** Every key path of a value ("a.b", "a.c[].d"); the keys of records (class names, splits) count as one "*". */
function keyPaths(v: unknown, at = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) v.forEach((x) => keyPaths(x, `${at}[]`, out));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      const key = /^[a-z][A-Za-z]*$/.test(k) ? k : '*';
      out.add(`${at}${at ? '.' : ''}${key}`);
      keyPaths(x, `${at}${at ? '.' : ''}${key}`, out);
    }
  }
  return out;
}
const missing = (stored: unknown, served: unknown) => [...keyPaths(stored)].filter((p) => !keyPaths(served).has(p));

describe('answers serialized by their schemas', () => {
  const KEY = 'contract-key-0123456789';
  const H = { authorization: `Bearer ${KEY}` };
  let deps: ApiDeps;
  let app: FastifyInstance;
  let datasetId: string;

  beforeAll(async () => {
    deps = createDeps(testConfig({ GRAFT_API_KEYS: `contract:${KEY}` }));
    await deps.storage.ensureBucket();
    app = await buildApp(deps);
    const zip = await zipOf(await patternDataset({ train: 6, validation: 2 }));
    const res = await app.inject({ method: 'POST', url: '/v1/datasets?name=shapes', headers: { ...H, 'content-type': 'application/zip' }, payload: zip });
    expect(res.statusCode).toBe(201);
    datasetId = res.json().id;
  });
  afterAll(async () => {
    await app?.close();
    await deps?.close();
  });

  it('keeps every field of the dataset manifest and the health report', async () => {
    const manifest = await deps.storage.getJson(keys.datasetManifest('contract', datasetId));
    expect(missing(manifest, (await app.inject({ url: `/v1/datasets/${datasetId}`, headers: H })).json())).toEqual([]);
    expect(missing([manifest], (await app.inject({ url: '/v1/datasets', headers: H })).json().items)).toEqual([]);
    const health = await deps.storage.getJson(keys.datasetHealth('contract', datasetId));
    expect(missing(health, (await app.inject({ url: `/v1/datasets/${datasetId}/health`, headers: H })).json())).toEqual([]);
  });

  it('keeps every field of a finished job record but the tenant and the cancel flag', async () => {
    const created = await app.inject({ method: 'POST', url: '/v1/jobs', headers: H, payload: { datasetId } });
    expect(created.statusCode).toBe(202);
    const id = created.json().id;
    const store = deps.queue.jobs;
    await store.appendHistory(id, { phase: 'training_head', epoch: 1, attempt: 1, loss: 0.5, accuracy: 0.75, valLoss: 0.4, valAccuracy: null, seconds: 1.5 });
    await store.update(id, { state: 'succeeded', phase: null, backend: 'cpu', dropped: { leaked: 2 }, refit: { headEpochs: 3, fineTuningEpochs: 1, images: 40 }, test: METRICS, validation: METRICS, modelId: 'mdl_contract', error: { code: 'TRAINING_FAILED', message: 'an earlier attempt' }, startedAt: new Date().toISOString(), finishedAt: new Date().toISOString() });
    const { tenant: _t, cancelRequested: _c, ...rec } = (await store.get(id))!;
    const served = (await app.inject({ url: `/v1/jobs/${id}`, headers: H })).json();
    expect(missing(rec, served)).toEqual([]);
    expect(served).toEqual(JSON.parse(JSON.stringify(rec)));
  });

  it('serves records stored by an earlier version, before fields that are required now existed', async () => {
    const created = await app.inject({ method: 'POST', url: '/v1/jobs', headers: H, payload: { datasetId } });
    const id = created.json().id;
    const store = deps.queue.jobs;
    const { labelIssues: _l, ...older } = (await store.get(id))!.config;
    await store.update(id, { config: older as never });
    const job = await app.inject({ url: `/v1/jobs/${id}`, headers: H });
    expect(job.statusCode).toBe(200);
    expect(job.json().config.labelIssues).toBe(false);

    const healthKey = keys.datasetHealth('contract', datasetId);
    const report = await deps.storage.getJson<HealthReport>(healthKey);
    const { nearDuplicateImageIds: _n, ...olderReport } = report;
    const image = (n: number) => ({ imageId: `img_${String(n).repeat(20)}`, path: `train/dots/${n}.jpg`, split: 'train' as const, label: 'dots', width: 64, height: 64 });
    const group = { split: 'train' as const, similarity: 0.97, mixedLabels: false, images: [image(1), image(2)] };
    await deps.storage.putJson(healthKey, { ...olderReport, nearDuplicates: [group] });
    try {
      const health = await app.inject({ url: `/v1/datasets/${datasetId}/health`, headers: H });
      expect(health.statusCode).toBe(200);
      expect(health.json().nearDuplicateImageIds).toEqual([group.images.map((im) => im.imageId)]);
    } finally {
      await deps.storage.putJson(healthKey, report);
    }
  });

  it('keeps every field of a model record', async () => {
    const rec: ModelRecord = {
      id: 'mdl_contract', jobId: 'job_contract', datasetId, labels: ['dots', 'stripes'], backbone: null, method: 'scratch', inputSize: 32,
      metrics: { test: METRICS, validation: null }, artifacts: ['model.json'], createdAt: new Date().toISOString(),
    };
    await deps.storage.putJson(keys.modelRecord('contract', rec.id), rec);
    expect((await app.inject({ url: `/v1/models/${rec.id}`, headers: H })).json()).toEqual(rec);
  });
});

const BIN = { from: 0.9, to: 1, count: 3, confidence: 0.95, accuracy: null };
const METRICS: EvalMetrics = {
  loss: 0.25, accuracy: 0.875, confusionMatrix: [[3, 1], [0, 4]], labels: ['dots', 'stripes'],
  perClass: { dots: { precision: 1, recall: 0.75, f1: 0.857, support: 4 }, stripes: { precision: 0.8, recall: 1, f1: 0.889, support: 4 } },
  calibration: { temperature: 1.5, ece: 0.05, calibratedEce: 0.02, calibratedLoss: 0.3, reliability: [BIN], calibratedReliability: [BIN] },
};

// /v1/models/:id/predict against a real S3 holding a tiny classifier in the model layout the worker writes:
// ONNX Runtime answers, TF.js agrees, timing and batch sizes are reported, bad images are named.
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '@graft/storage';
import { exportOnnx } from '@graft/inference';
import { exportClassifier, initBackend, loadClassifier, makeManifest, PREPROCESSING } from '@graft/vision';
import { buildApp } from '../src/app';
import { createDeps, type ApiDeps } from '../src/deps';
import { testConfig } from '../../../test/support/services';

const KEY = 'predict-key-0123456789';
const H = { authorization: `Bearer ${KEY}` };
const TENANT = 'pred';
const SIZE = 20;

async function classifierFiles(labels: string[], seed: number, withOnnx: boolean): Promise<Record<string, Uint8Array>> {
  const init = (k: number) => tf.initializers.glorotUniform({ seed: seed * 10 + k });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [SIZE, SIZE, 3], filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: labels.length === 2 ? 1 : labels.length, activation: labels.length === 2 ? 'sigmoid' : 'softmax', kernelInitializer: init(2) }),
    ],
  });
  const manifest = makeManifest({
    labels,
    inputSize: SIZE,
    backbone: null,
    method: 'scratch',
    preprocessing: PREPROCESSING.tf,
    outputActivation: labels.length === 2 ? 'sigmoid' : 'softmax',
  });
  const files = await exportClassifier(model, manifest);
  model.dispose();
  if (withOnnx) files['model.onnx'] = exportOnnx(JSON.parse(Buffer.from(files['model.json']!).toString()), files['weights.bin']!);
  return files;
}

async function image(seed: number, format: 'jpeg' | 'png' = 'jpeg'): Promise<Buffer> {
  const w = 30 + seed;
  const px = Buffer.alloc(w * 25 * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * (seed + 5) * 7 + ((i / 90) | 0) * 11) & 0xff;
  const s = sharp(px, { raw: { width: w, height: 25, channels: 3 } });
  return format === 'png' ? s.png().toBuffer() : s.jpeg().toBuffer();
}

describe('POST /v1/models/:id/predict', () => {
  let deps: ApiDeps;
  let app: FastifyInstance;
  const models: Record<string, Record<string, Uint8Array>> = {};

  const publish = async (id: string, labels: string[], files: Record<string, Uint8Array>) => {
    for (const [name, data] of Object.entries(files)) await deps.storage.put(keys.modelArtifact(TENANT, id, name), data);
    await deps.storage.putJson(keys.modelRecord(TENANT, id), {
      id,
      jobId: id.replace('mdl_', 'job_'),
      datasetId: 'ds_test',
      labels,
      backbone: null,
      method: 'scratch',
      inputSize: SIZE,
      metrics: {},
      artifacts: Object.keys(files),
      createdAt: new Date().toISOString(),
    });
    models[id] = files;
  };

  const predictRaw = (a: FastifyInstance, id: string, body: Buffer, query = '') =>
    a.inject({ method: 'POST', url: `/v1/models/${id}/predict${query}`, headers: { ...H, 'content-type': 'image/jpeg' }, payload: body });

  beforeAll(async () => {
    await initBackend();
    deps = createDeps(testConfig({ GRAFT_API_KEYS: `${TENANT}:${KEY}`, GRAFT_PREDICT_MAX_WAIT_MS: '2' }));
    await deps.storage.ensureBucket();
    app = await buildApp(deps);
    await publish('mdl_three', ['ants', 'bees', 'wasps'], await classifierFiles(['ants', 'bees', 'wasps'], 1, false));
    await publish('mdl_two', ['cats', 'dogs'], await classifierFiles(['cats', 'dogs'], 2, true));
  });
  afterAll(async () => {
    await app?.close();
    await deps?.close();
  });

  it('answers with ONNX Runtime, in agreement with the TF.js classifier, and says where the time went', async () => {
    const imgs = await Promise.all([1, 2, 3].map((s) => image(s)));
    const reference = await loadClassifier(models.mdl_three!);
    const expected = await reference.probabilities(imgs);
    reference.dispose();
    for (const [i, img] of imgs.entries()) {
      const r = await predictRaw(app, 'mdl_three', img, '?topK=3');
      expect(r.statusCode, r.body).toBe(200);
      const body = r.json();
      expect(body.modelId).toBe('mdl_three');
      const preds = body.results[0].predictions as { label: string; probability: number }[];
      expect(preds.map((p) => p.label).sort()).toEqual(['ants', 'bees', 'wasps']);
      for (const p of preds) expect(Math.abs(p.probability - expected[i]![['ants', 'bees', 'wasps'].indexOf(p.label)]!)).toBeLessThan(1e-4);
      expect(body.timing).toMatchObject({ engine: 'onnxruntime', batchSize: 1 });
      for (const k of ['totalMs', 'decodeMs', 'queueMs', 'inferenceMs', 'loadMs']) expect(typeof body.timing[k], k).toBe('number');
      expect(body.timing.totalMs).toBeGreaterThanOrEqual(body.timing.decodeMs + body.timing.inferenceMs - 0.05);
      if (i === 0) expect(body.timing.loadMs).toBeGreaterThan(0);
      else expect(body.timing.loadMs).toBe(0);
    }
  });

  it('serves a model whose artifacts include model.onnx, one result per image in the order sent', async () => {
    const imgs = await Promise.all([4, 5, 6, 7].map((s) => image(s, s % 2 ? 'png' : 'jpeg')));
    const r = await app.inject({
      method: 'POST',
      url: '/v1/models/mdl_two/predict?topK=1',
      headers: { ...H, 'content-type': 'application/json' },
      payload: { images: imgs.map((b) => b.toString('base64')) },
    });
    expect(r.statusCode, r.body).toBe(200);
    const reference = await loadClassifier(models.mdl_two!);
    const expected = await reference.probabilities(imgs);
    reference.dispose();
    const results = r.json().results as { predictions: { label: string; probability: number }[] }[];
    expect(results).toHaveLength(4);
    results.forEach((res, i) => {
      const best = expected[i]![1]! > expected[i]![0]! ? 'dogs' : 'cats';
      expect(res.predictions).toHaveLength(1);
      expect(res.predictions[0]!.label).toBe(best);
      expect(Math.abs(res.predictions[0]!.probability - Math.max(...expected[i]!))).toBeLessThan(1e-4);
    });
  });

  it('names the undecodable image of a request and leaves concurrent requests alone', async () => {
    const good = await image(8);
    const [bad, ok] = await Promise.all([
      app.inject({
        method: 'POST',
        url: '/v1/models/mdl_three/predict',
        headers: { ...H, 'content-type': 'application/json' },
        payload: { images: [good.toString('base64'), good.toString('base64'), Buffer.from('not an image').toString('base64')] },
      }),
      predictRaw(app, 'mdl_three', good),
    ]);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: 'INVALID_IMAGE', details: { index: 2 } });
    expect(ok.statusCode).toBe(200);
  });

  it('batches concurrent requests and reports the batch sizes in /metrics', async () => {
    const imgs = await Promise.all(Array.from({ length: 12 }, (_, i) => image(10 + i)));
    const responses = await Promise.all(imgs.map((img) => predictRaw(app, 'mdl_three', img)));
    for (const r of responses) expect(r.statusCode).toBe(200);
    const sizes = responses.map((r) => r.json().timing.batchSize as number);
    for (const s of sizes) expect(s).toBeGreaterThanOrEqual(1);
    const metrics = (await app.inject('/metrics')).body;
    const count = Number(/^graft_predict_batch_size_count (\d+)/m.exec(metrics)?.[1]);
    const sum = Number(/^graft_predict_batch_size_sum (\d+)/m.exec(metrics)?.[1]);
    // Every image of every request so far ran in exactly one batch; the request with a bad image never queued.
    expect(sum).toBe(3 + 4 + 1 + 12);
    expect(count).toBeLessThanOrEqual(sum);
    // /metrics is anonymous: predict latency is there, but no model (nor job, nor tenant) is named.
    expect(Number(/^graft_predict_duration_seconds_count (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(12);
    expect(metrics).not.toMatch(/\b(mdl|job|ds)_[a-z0-9]|"pred"/);
  });

  it('forgets a deleted model', async () => {
    await publish('mdl_gone', ['a', 'b'], await classifierFiles(['a', 'b'], 3, false));
    expect((await predictRaw(app, 'mdl_gone', await image(30))).statusCode).toBe(200);
    const del = await app.inject({ method: 'DELETE', url: '/v1/models/mdl_gone', headers: H });
    expect(del.statusCode).toBe(204);
    const after = await predictRaw(app, 'mdl_gone', await image(30));
    expect(after.statusCode).toBe(404);
  });

  it('serves with TF.js when GRAFT_PREDICT_ENGINE=tfjs, with the same answers', async () => {
    const d = createDeps(testConfig({ GRAFT_API_KEYS: `${TENANT}:${KEY}`, GRAFT_PREDICT_ENGINE: 'tfjs', S3_BUCKET: deps.config.s3.bucket }));
    const a = await buildApp(d);
    try {
      const img = await image(40);
      const [viaTfjs, viaOrt] = await Promise.all([predictRaw(a, 'mdl_three', img, '?topK=3'), predictRaw(app, 'mdl_three', img, '?topK=3')]);
      expect(viaTfjs.statusCode, viaTfjs.body).toBe(200);
      expect(viaTfjs.json().timing.engine).toBe('tfjs');
      expect(viaOrt.json().timing.engine).toBe('onnxruntime');
      const byLabel = (r: typeof viaTfjs) =>
        Object.fromEntries((r.json().results[0].predictions as { label: string; probability: number }[]).map((p) => [p.label, p.probability]));
      const t = byLabel(viaTfjs);
      const o = byLabel(viaOrt);
      for (const label of ['ants', 'bees', 'wasps']) expect(Math.abs(t[label]! - o[label]!)).toBeLessThan(1e-4);
    } finally {
      await a.close();
      await d.close();
    }
  });
});

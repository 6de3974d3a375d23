// Whole jobs on the webgpu backend through the worker as production runs it: the API and a worker as processes,
// the worker with GRAFT_TF_BACKEND=webgpu and synchronous tensor reads turned off (the webgpu backend in Node has
// none), one job per method and augmentation mode, MobileNet v1 0.25 at a small input size on a few images. The
// frozen base runs on TensorFlow.js there (the GPU), not on ONNX Runtime. Runs where a WebGPU adapter exists: a
// GPU, or Mesa's lavapipe on the CPU (.ci/run installs it); skipped with the reason printed elsewhere.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configEnv, testConfig } from './support/services';
import { patternDataset, zipOf } from './support/images';
import { runService, startApi, waitFor, type Service } from './support/processes';
import { startWebGpuForTest } from '../packages/vision/test/webgpu';

const KEY = 'webgpu-key-0123456789';
const H = { authorization: `Bearer ${KEY}` };
const unavailable = await startWebGpuForTest();

const base = { backbone: 'mobilenet_v1_0.25_224', inputSize: 48, batchSize: 8, head: { units: 8 }, earlyStopping: false } as const;
const phase = { epochs: 1, optimizer: 'adam', learningRate: 0.001 } as const;
/** Every method, each augmentation mode: [name, config, phases expected in the history]. */
const JOBS: [string, object, string[]][] = [
  ['scratch', { method: 'scratch', inputSize: 48, batchSize: 8, augmentation: { mode: 'end_to_end' }, featureExtraction: phase, earlyStopping: false }, ['training_head']],
  ['feature extraction, cached copies', { ...base, method: 'feature_extraction', augmentation: { copies: 1 }, featureExtraction: phase }, ['training_head']],
  ['feature extraction, end to end', { ...base, method: 'feature_extraction', augmentation: { mode: 'end_to_end' }, featureExtraction: phase }, ['training_head']],
  ['fine-tuning, cached copies', { ...base, method: 'fine_tuning', augmentation: { copies: 1 }, featureExtraction: phase, fineTuning: phase }, ['training_head', 'fine_tuning']],
  ['fine-tuning, end to end', { ...base, method: 'fine_tuning', augmentation: { mode: 'end_to_end' }, featureExtraction: phase, fineTuning: phase }, ['training_head', 'fine_tuning']],
];

describe.skipIf(unavailable)('jobs on the webgpu backend, through the worker', () => {
  let api: Service & { url: string };
  let worker: Service;
  let datasetId: string;

  beforeAll(async () => {
    const env = { ...configEnv(testConfig()), GRAFT_API_KEYS: `webgpu:${KEY}` };
    api = await startApi(env);
    worker = runService('services/worker/src/main.ts', { ...env, GRAFT_TF_BACKEND: 'webgpu', GRAFT_TF_SYNC_READS: 'throw' });
    const entries = await patternDataset({ train: 6, validation: 3 }, 5);
    const res = await fetch(`${api.url}/v1/datasets?name=webgpu-patterns`, {
      method: 'POST',
      headers: { ...H, 'content-type': 'application/zip' },
      body: new Uint8Array(await zipOf(entries)),
    });
    expect(res.status).toBe(201);
    datasetId = (await res.json()).id;
  });
  afterAll(async () => {
    await Promise.all([api?.stop(), worker?.stop()]);
  });

  it('trains every method to a model, the frozen base on TensorFlow.js', async () => {
    const ids: string[] = [];
    for (const [, config] of JOBS) {
      const r = await fetch(`${api.url}/v1/jobs`, {
        method: 'POST',
        headers: { ...H, 'content-type': 'application/json' },
        body: JSON.stringify({ datasetId, config }),
      });
      expect(r.status, await r.clone().text()).toBe(202);
      ids.push((await r.json()).id);
    }
    const jobs: { state: string; error?: unknown; history: { phase: string }[]; modelId?: string }[] = [];
    for (const id of ids) {
      jobs.push(
        await waitFor(
          `job ${id}`,
          async () => {
            const job = await (await fetch(`${api.url}/v1/jobs/${id}`, { headers: H })).json();
            return ['succeeded', 'failed', 'cancelled'].includes(job.state) ? job : null;
          },
          900_000,
          500,
        ),
      );
    }
    const out = worker.output();
    JOBS.forEach(([name, , phases], i) => {
      const job = jobs[i];
      expect(`${name}: ${job.state} ${JSON.stringify(job.error ?? null)}`, out.slice(-4000)).toBe(`${name}: succeeded null`);
      expect([...new Set(job.history.map((h) => h.phase))], name).toEqual(phases);
      expect(job.modelId, name).toMatch(/^mdl_/);
    });
    // The job's training process chose webgpu as asked, and the frozen base ran there, never on ONNX Runtime.
    expect(out).toMatch(/TensorFlow\.js backend: webgpu \(requested\)/);
    expect(out).toMatch(/runs on TensorFlow\.js: its webgpu backend computes on the GPU/);
    expect(out).not.toMatch(/runs on ONNX Runtime/);
    // Images were augmented and normalised by the backend, next to the frozen base.
    expect(out).toMatch(/"augmentedOn":"backend".*"msg":"features extracted"/);
    expect(out).not.toMatch(/"augmentedOn":"thread"/);
    expect(out).not.toMatch(/synchronous tensor reads are turned off/);
  }, 1_200_000);
});

describe.runIf(unavailable)('jobs on the webgpu backend without an adapter', () => {
  it('are not run here, for the reason printed', () => {
    expect(unavailable).toMatch(/webgpu/i);
  });
});

// /predict over HTTP: ONNX Runtime int8 and fp32 against TensorFlow.js, side by side in one run, on a MobileNet v1
// 0.75 classifier (224x224, the trained layout: frozen backbone + pooling + dense head, sigmoid over two labels) and
// real JPEGs from dogs-vs-cats/validation, one image per request; then POST /explain (Grad-CAM) one image at a time.
//
// It starts a redis-server, an S3-protocol server and three API processes (int8: model.int8.onnx served, the
// default; fp32: GRAFT_INT8=false; tfjs: GRAFT_PREDICT_ENGINE=tfjs; only one is measured at a time), writes the
// classifier into S3 in the layout the worker publishes (artifacts incl. model.onnx and model.int8.onnx, calibrated
// on 64 dogs-vs-cats training images, then record.json), then measures per engine: latency p50/p99 with 1 client,
// and throughput + p50/p99 with 8 and 32 concurrent clients; checks that fp32's probabilities agree with TF.js
// within 1e-4 and says how often int8's top label is fp32's (the head's weights are random here, so its
// probabilities sit near 0.5: a trained model's agreement is what training checks before it keeps int8).
// The load average is printed before and after: the numbers only mean something on a quiet machine.
// With --sweep it first compares ONNX Runtime thread layouts in-process (no HTTP), and how long the event loop
// stalls with sessions on the main thread against a worker thread.
//
// With --ood the classifier is saved as training saves it now: a calibration temperature, and an out-of-distribution
// bank of 1000 feature vectors, model.onnx giving the features and their dot products with the bank beside the
// probabilities, so every prediction is calibrated and scored.
//
//   npx tsx bench/predict.ts [--requests 200] [--tfjs-requests 40] [--agree 64] [--explain 30] [--sweep | --sweep-only]
//                            [--max-wait 3] [--max-batch 16] [--ood]
// Targets (issues 13 and 14): int8 p50 <= 10 ms with 1 client, >= 200 images/s with 8; explain p50 < 200 ms.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { exportClassifier, getBackboneSpec, initBackend, loadBackbone, makeManifest } from '@graft/vision';
import { resizeKernelOf, exportOnnx, normalizedBatches, normalizeRows, pixelTransform, quantizeOnnx, OOD_BANK_FILE, OOD_NEIGHBOURS, withOodOutput, LocalSessionHost, loadOnnxClassifier, SessionHost, type ClassifierManifest, type SessionHostLike } from '@graft/inference';
import { keys, Storage } from '@graft/storage';
import { startEmbeddedS3, startRedisServer } from '@graft/devservers';
import { startApi, type Service } from '../test/support/processes';
import { coreScaling, describeScaling } from './machine';

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '200' },
    'tfjs-requests': { type: 'string', default: '40' },
    agree: { type: 'string', default: '64' },
    sweep: { type: 'boolean', default: false },
    'sweep-only': { type: 'boolean', default: false },
    'max-wait': { type: 'string', default: '3' },
    'max-batch': { type: 'string', default: '16' },
    ood: { type: 'boolean', default: false },
    explain: { type: 'string', default: '30' },
  },
});

const SHARED = path.resolve(import.meta.dirname, '../../shared');
const BACKBONE = 'mobilenet_v1_0.75_224';
const IMAGES = path.join(SHARED, 'datasets/dogs-vs-cats/validation');
const CALIBRATION = path.join(SHARED, 'datasets/dogs-vs-cats/train');
const TENANT = 'bench';
const KEY = 'bench-key-0123456789';
const MODEL_ID = 'mdl_benchmobilenet075';

/** The classifier as training exports it: the headless backbone, global average pooling, Dense(256) + Dropout, sigmoid. */
async function buildClassifier(): Promise<Record<string, Uint8Array>> {
  const backbone = await loadBackbone(BACKBONE, path.join(SHARED, 'models'));
  const init = (k: number) => tf.initializers.glorotUniform({ seed: 17 + k });
  let y = tf.layers.globalAveragePooling2d({ name: 'graft_head_pool' }).apply(backbone.outputs[0]!) as tf.SymbolicTensor;
  y = tf.layers.dense({ units: 256, activation: 'relu', kernelInitializer: init(1), name: 'graft_head_dense' }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.dropout({ rate: 0.5, name: 'graft_head_dropout' }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.dense({ units: 1, activation: 'sigmoid', kernelInitializer: init(2), name: 'graft_head_predictions' }).apply(y) as tf.SymbolicTensor;
  const model = tf.model({ inputs: backbone.inputs, outputs: y, name: 'graft_classifier' });
  const manifest = makeManifest({
    labels: ['cats', 'dogs'],
    inputSize: getBackboneSpec(BACKBONE).inputSize,
    backbone: BACKBONE,
    method: 'feature_extraction',
    preprocessing: getBackboneSpec(BACKBONE).preprocessing,
    outputActivation: 'sigmoid',
    ...(args.ood ? oodParts() : {}),
  });
  const files = await exportClassifier(model, manifest);
  model.dispose();
  // As the worker does after training.
  const json = JSON.parse(Buffer.from(files['model.json']!).toString('utf8'));
  const bank = oodBank();
  const served = args.ood ? withOodOutput(json, files['weights.bin']!, oodParts().outOfDistribution, bank) : { modelJson: json, weights: files['weights.bin']! };
  files['model.onnx'] = exportOnnx(served.modelJson, served.weights);
  files['model.int8.onnx'] = (await quantizeOnnx(files['model.onnx'], await calibrationBatches(manifest), { method: 'minmax', inputPixels: pixelTransform(manifest.preprocessing) })).model;
  if (args.ood) files[OOD_BANK_FILE] = new Uint8Array(bank.buffer);
  return files;
}

/** 64 training images (not the validation images measured), normalised as the model takes them, in batches of 16. */
async function calibrationBatches(manifest: ClassifierManifest): Promise<{ input: Float32Array; batch: number }[]> {
  const p = { size: manifest.inputSize, transform: pixelTransform(manifest.preprocessing), kernel: resizeKernelOf(manifest.preprocessing) };
  const batches = [];
  for await (const b of normalizedBatches(loadImages(64, CALIBRATION), p, 16)) batches.push(b);
  return batches;
}

const BANK = 1000;
const FEATURES = 768;

/** A bank of pseudo-random unit vectors: what scoring costs does not depend on their values. */
function oodBank(): Float32Array {
  let s = 12345;
  const bank = Float32Array.from({ length: BANK * FEATURES }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5);
  return normalizeRows(bank, FEATURES);
}

function oodParts() {
  return {
    calibration: { temperature: 1.5, fittedOn: 'validation' as const, images: 100 },
    outOfDistribution: {
      method: 'knn' as const,
      neighbours: OOD_NEIGHBOURS,
      featureLayer: 'graft_head_pool',
      featureSize: FEATURES,
      bankFile: OOD_BANK_FILE,
      bankSize: BANK,
      threshold: 1,
    },
  };
}

async function publish(storage: Storage, files: Record<string, Uint8Array>): Promise<void> {
  for (const [name, data] of Object.entries(files)) await storage.put(keys.modelArtifact(TENANT, MODEL_ID, name), data);
  await storage.putJson(keys.modelRecord(TENANT, MODEL_ID), {
    id: MODEL_ID,
    jobId: MODEL_ID.replace('mdl_', 'job_'),
    datasetId: 'ds_bench',
    labels: ['cats', 'dogs'],
    backbone: BACKBONE,
    method: 'feature_extraction',
    inputSize: 224,
    metrics: {},
    artifacts: Object.keys(files),
    createdAt: new Date().toISOString(),
  });
}

function loadImages(n: number, dir = IMAGES): Buffer[] {
  const lists = ['cats', 'dogs'].map((c) =>
    fs
      .readdirSync(path.join(dir, c))
      .sort()
      .map((f) => path.join(dir, c, f)),
  );
  const files: string[] = [];
  for (let i = 0; files.length < n && i < lists[0]!.length; i++) for (const l of lists) if (files.length < n && l[i]) files.push(l[i]!);
  return files.map((f) => fs.readFileSync(f));
}

interface Reply {
  status: number;
  body: any;
}

/** POST one JPEG over a keep-alive connection. */
function post(agent: http.Agent, base: string, body: Buffer, query = '', action = 'predict'): Promise<Reply> {
  const u = new URL(`${base}/v1/models/${MODEL_ID}/${action}${query}`);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', agent, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'image/jpeg', 'content-length': body.length } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          } catch (err) {
            reject(err);
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

interface Run {
  clients: number;
  requests: number;
  errors: number;
  seconds: number;
  p50: number;
  p99: number;
  imagesPerSecond: number;
  timing: { decodeMs: number; queueMs: number; inferenceMs: number; batchSize: number; serverMs: number };
}

/** `requests` requests, `clients` at a time, each one image, cycling through the images. */
async function measure(base: string, images: Buffer[], clients: number, requests: number): Promise<Run> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const latencies: number[] = [];
  const timings: any[] = [];
  const statuses: Record<number, number> = {};
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < requests) {
        const i = next++;
        const t = performance.now();
        try {
          const r = await post(agent, base, images[i % images.length]!);
          if (r.status !== 200) {
            errors++;
            statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          } else timings.push(r.body.timing);
        } catch {
          errors++;
        }
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  if (errors) console.log(`${clients} clients: ${errors} errors, by status ${JSON.stringify(statuses)}`);
  latencies.sort((a, b) => a - b);
  const avg = (k: string) => mean(timings.map((x) => x[k] ?? 0));
  return {
    clients,
    requests,
    errors,
    seconds,
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    imagesPerSecond: (requests - errors) / seconds,
    timing: { decodeMs: avg('decodeMs'), queueMs: avg('queueMs'), inferenceMs: avg('inferenceMs'), batchSize: avg('batchSize'), serverMs: avg('totalMs') },
  };
}

/** POST /explain with `requests` images one after another (after two to load the explainer). */
async function measureExplain(base: string, images: Buffer[], requests: number): Promise<{ requests: number; errors: number; p50: number; p99: number }> {
  const agent = new http.Agent({ keepAlive: true });
  for (let i = 0; i < 2; i++) await post(agent, base, images[i]!, '', 'explain');
  const latencies: number[] = [];
  let errors = 0;
  for (let i = 0; i < requests; i++) {
    const t = performance.now();
    const r = await post(agent, base, images[(i + 2) % images.length]!, '', 'explain');
    latencies.push(performance.now() - t);
    if (r.status !== 200 || !r.body.overlay) errors++;
  }
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { requests, errors, p50: pct(latencies, 50), p99: pct(latencies, 99) };
}

/** In-process: each layout of worker threads x intra-op threads, 8 concurrent callers of single images. */
async function sweep(files: Record<string, Uint8Array>, images: Buffer[]): Promise<void> {
  const manifest = JSON.parse(Buffer.from(files['graft.json']!).toString('utf8')) as ClassifierManifest;
  const onnx = files['model.onnx']!;
  const cores = os.availableParallelism();
  const layouts: { name: string; host: () => SessionHostLike }[] = [
    { name: `main thread, ${cores} intra-op threads`, host: () => new LocalSessionHost(cores) },
    { name: `1 worker x ${cores} intra-op threads`, host: () => new SessionHost({ workers: 1, threads: cores }) },
    { name: '1 worker x 1 intra-op thread', host: () => new SessionHost({ workers: 1, threads: 1 }) },
    { name: `${cores} workers x 1 intra-op thread`, host: () => new SessionHost({ workers: cores, threads: 1 }) },
  ];
  console.log(`\n### ONNX Runtime layouts, in process (no HTTP), ${cores} cores\n`);
  console.log('| layout | 1 caller p50 ms | 8 callers images/s | 8 callers p50 / p99 ms | mean batch | event loop max stall ms (8 callers) |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const layout of layouts) {
    const host = layout.host();
    const clf = await loadOnnxClassifier(manifest, onnx, host, { maxBatch: Number(args['max-batch']), maxWaitMs: Number(args['max-wait']) });
    const one = async (i: number) => {
      const t = performance.now();
      const r = await clf.classify([images[i % images.length]!]);
      return { ms: performance.now() - t, batch: r.timing.batchSize };
    };
    for (let i = 0; i < 5; i++) await one(i);
    const single: number[] = [];
    for (let i = 0; i < 60; i++) single.push((await one(i)).ms);
    single.sort((a, b) => a - b);
    const lat: number[] = [];
    const batches: number[] = [];
    let next = 0;
    const total = 240;
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < total) {
          const r = await one(next++);
          lat.push(r.ms);
          batches.push(r.batch);
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    loop.disable();
    lat.sort((a, b) => a - b);
    console.log(
      `| ${layout.name} | ${pct(single, 50).toFixed(1)} | ${(total / secs).toFixed(0)} | ${pct(lat, 50).toFixed(1)} / ${pct(lat, 99).toFixed(1)} | ${mean(batches).toFixed(1)} | ${(loop.max / 1e6).toFixed(1)} |`,
    );
    await clf.dispose();
    await host.close();
  }
}

async function main(): Promise<void> {
  const requests = Number(args.requests);
  const tfjsRequests = Number(args['tfjs-requests']);
  const agreeCount = Number(args.agree);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-predict-'));
  const services: { stop(): Promise<void> }[] = [];
  try {
    await initBackend();
    console.log(`# /predict benchmark: ${BACKBONE} classifier, ${os.availableParallelism()} cores, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} (${new Date().toISOString()})`);
    console.log(describeScaling(await coreScaling()));
    let t = performance.now();
    const files = await buildClassifier();
    console.log(`classifier built and exported in ${((performance.now() - t) / 1000).toFixed(1)} s (weights.bin ${(files['weights.bin']!.byteLength / 1e6).toFixed(1)} MB, model.onnx ${(files['model.onnx']!.byteLength / 1e6).toFixed(1)} MB, model.int8.onnx ${(files['model.int8.onnx']!.byteLength / 1e6).toFixed(1)} MB)`);
    const images = loadImages(Math.max(agreeCount, 200));
    if (args.sweep || args['sweep-only']) await sweep(files, images);
    if (args['sweep-only']) return;

    const [redis, s3] = await Promise.all([startRedisServer({ dir: path.join(dir, 'redis') }), startEmbeddedS3({ dir: path.join(dir, 's3') })]);
    services.push(redis, s3);
    const env = {
      REDIS_URL: redis.url,
      S3_ENDPOINT: s3.endpoint,
      S3_BUCKET: 'graft-bench',
      GRAFT_QUEUE_PREFIX: 'bench',
      GRAFT_API_KEYS: `${TENANT}:${KEY}`,
      GRAFT_RATE_LIMIT: '0',
      // 32 clients of one tenant at once: above the default in-flight bound of 16, which would refuse half of them.
      GRAFT_TENANT_PREDICTS: '64',
      GRAFT_PREDICT_MAX_WAIT_MS: args['max-wait']!,
      GRAFT_PREDICT_MAX_BATCH: args['max-batch']!,
      LOG_LEVEL: 'warn',
    };
    const storage = new Storage({ endpoint: s3.endpoint, bucket: 'graft-bench', region: 'us-east-1', accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', forcePathStyle: true });
    await storage.ensureBucket();
    await publish(storage, files);
    storage.close();

    type Engine = 'int8' | 'fp32' | 'tfjs';
    const ENGINES: Engine[] = ['int8', 'fp32', 'tfjs'];
    const NAMES: Record<Engine, string> = { int8: 'ONNX Runtime int8', fp32: 'ONNX Runtime fp32', tfjs: 'TF.js (wasm)' };
    const apis: Record<Engine, Service & { url: string }> = {
      int8: await startApi({ ...env, GRAFT_PREDICT_ENGINE: 'onnx' }),
      fp32: await startApi({ ...env, GRAFT_PREDICT_ENGINE: 'onnx', GRAFT_INT8: 'false' }),
      tfjs: await startApi({ ...env, GRAFT_PREDICT_ENGINE: 'tfjs' }),
    };
    services.push(...Object.values(apis));

    // Load the model in each and warm up.
    for (const engine of ENGINES) {
      const agent = new http.Agent({ keepAlive: true });
      t = performance.now();
      const first = await post(agent, apis[engine].url, images[0]!);
      if (first.status !== 200) throw new Error(`${engine}: ${JSON.stringify(first.body)}`);
      if (args.ood && engine !== 'tfjs' && typeof first.body.results[0].outOfDistribution?.score !== 'number') throw new Error('no out-of-distribution score');
      if (first.body.timing.engine !== (engine === 'tfjs' ? 'tfjs' : 'onnxruntime')) throw new Error(`${engine} API served with ${first.body.timing.engine}`);
      console.log(`${engine}: first request (model load) ${(performance.now() - t).toFixed(0)} ms`);
      for (let i = 1; i < 10; i++) await post(agent, apis[engine].url, images[i]!);
      agent.destroy();
    }

    // Agreement: the same images through each engine.
    const agent = new http.Agent({ keepAlive: true });
    let maxDiff = 0;
    let int8Diff = 0;
    let sameTop = 0;
    let agreeErrors = 0;
    for (const img of images.slice(0, agreeCount)) {
      const [q, o, f] = await Promise.all(ENGINES.map((e) => post(agent, apis[e].url, img, '?topK=2')));
      if (q!.status !== 200 || o!.status !== 200 || f!.status !== 200) {
        agreeErrors++;
        continue;
      }
      const byLabel = (r: Reply) => Object.fromEntries(r.body.results[0].predictions.map((p: any) => [p.label, p.probability]));
      const [a, b, c] = [byLabel(o!), byLabel(f!), byLabel(q!)];
      for (const label of ['cats', 'dogs']) {
        maxDiff = Math.max(maxDiff, Math.abs(a[label] - b[label]));
        int8Diff = Math.max(int8Diff, Math.abs(a[label] - c[label]));
      }
      sameTop += +(q!.body.results[0].predictions[0].label === o!.body.results[0].predictions[0].label);
    }
    agent.destroy();

    const results: Record<Engine, Run[]> = { int8: [], fp32: [], tfjs: [] };
    for (const clients of [1, 8, 32]) {
      for (const engine of ['int8', 'fp32'] as const) {
        results[engine].push(await measure(apis[engine].url, images, clients, clients === 1 ? Math.min(requests, 150) : requests * (clients === 32 ? 2 : 1)));
      }
      results.tfjs.push(await measure(apis.tfjs.url, images, clients, Math.max(clients, clients === 1 ? Math.min(tfjsRequests, 30) : tfjsRequests)));
    }

    console.log(`\n### /predict over HTTP, one ${BACKBONE} JPEG per request (GRAFT_PREDICT_MAX_BATCH=${args['max-batch']}, GRAFT_PREDICT_MAX_WAIT_MS=${args['max-wait']})\n`);
    console.log('| engine | clients | requests | errors | images/s | p50 ms | p99 ms | server: total / decode / queue / inference ms (means) | mean batch |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (let i = 0; i < 3; i++) {
      for (const engine of ENGINES) {
        const r = results[engine][i]!;
        const tm = r.timing;
        console.log(
          `| ${NAMES[engine]} | ${r.clients} | ${r.requests} | ${r.errors} | ${r.imagesPerSecond.toFixed(1)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${tm.serverMs.toFixed(1)} / ${engine === 'tfjs' ? '(in inference)' : tm.decodeMs.toFixed(1)} / ${tm.queueMs.toFixed(1)} / ${tm.inferenceMs.toFixed(1)} | ${tm.batchSize.toFixed(1)} |`,
        );
      }
    }
    const explain = await measureExplain(apis.int8.url, images, Number(args.explain));
    console.log(`\n### POST /explain (Grad-CAM, overlay PNG), one client, ${explain.requests} images one after another\n`);
    console.log(`p50 ${explain.p50.toFixed(1)} ms, p99 ${explain.p99.toFixed(1)} ms, errors ${explain.errors}`);

    const one = results.int8[0]!;
    const eight = results.int8[1]!;
    const checks = [
      [`int8: 1 client p50 <= 10 ms`, one.p50 <= 10, `${one.p50.toFixed(1)} ms (fp32 ${results.fp32[0]!.p50.toFixed(1)} ms)`],
      [
        `int8: 8 clients >= 200 images/s, no errors`,
        eight.imagesPerSecond >= 200 && eight.errors === 0,
        `${eight.imagesPerSecond.toFixed(1)} images/s, ${eight.errors} errors (fp32 ${results.fp32[1]!.imagesPerSecond.toFixed(1)} images/s)`,
      ],
      [`explain p50 < 200 ms, no errors`, explain.p50 < 200 && explain.errors === 0, `${explain.p50.toFixed(1)} ms`],
      [`ONNX fp32 within 1e-4 of TF.js (${agreeCount} images)`, maxDiff <= 1e-4 && agreeErrors === 0, `max |diff| ${maxDiff.toExponential(2)}${agreeErrors ? `, ${agreeErrors} errors` : ''}`],
    ] as const;
    console.log(`\nint8 against fp32 (${agreeCount} images, random head): same top label on ${sameTop}, max |probability diff| ${int8Diff.toExponential(2)}`);
    console.log(`\nload average after the run: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    console.log('\n| target | met | measured |\n| --- | --- | --- |');
    for (const [what, ok, got] of checks) console.log(`| ${what} | ${ok ? 'yes' : 'NO'} | ${got} |`);
    process.exitCode = checks.every((c) => c[1]) ? 0 : 1;
  } finally {
    for (const s of services.reverse()) await s.stop().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

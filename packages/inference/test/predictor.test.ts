// The ONNX Runtime predictor against @graft/vision's TF.js classifier on the same tiny trained-layout models.
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportClassifier, initBackend, loadClassifier, makeManifest, PREPROCESSING, type Preprocessing } from '@graft/vision';
import { applyTemperature } from '../src/calibration';
import { exportOnnx } from '../src/onnx-export';
import { INT8_FILE, Predictor, type ModelSource, type PredictorOptions } from '../src/predictor';
import { quantizeOnnx } from '../src/quantize';
import { randomizeWeights } from './helpers';

const SIZE = 24;

/** A small classifier laid out as the trained ones are: conv backbone, pooling, dense head. */
function buildModel(classes: number, seed: number, extra?: 'upsampling'): tf.LayersModel {
  const input = tf.input({ shape: [SIZE, SIZE, 3], name: 'in' });
  let x = tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', name: 'c1' }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'bn1' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu', name: 'r1' }).apply(x) as tf.SymbolicTensor;
  if (extra === 'upsampling') x = tf.layers.upSampling2d({ size: [2, 2], name: 'up' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', name: 'dw' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'graft_head_pool' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 8, activation: 'relu', name: 'graft_head_dense' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dropout({ rate: 0.5, name: 'graft_head_dropout' }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({ units: classes === 2 ? 1 : classes, activation: classes === 2 ? 'sigmoid' : 'softmax', name: 'graft_head_predictions' })
    .apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'graft_classifier' });
  randomizeWeights(model, seed);
  return model;
}

async function classifierFiles(
  classes: number,
  seed: number,
  opts: { preprocessing?: Preprocessing; onnx?: boolean; extra?: 'upsampling'; temperature?: number } = {},
): Promise<Record<string, Uint8Array>> {
  const model = buildModel(classes, seed, opts.extra);
  const labels = Array.from({ length: classes }, (_, i) => `class_${i}`);
  const manifest = makeManifest({
    labels,
    inputSize: SIZE,
    backbone: null,
    method: 'scratch',
    preprocessing: opts.preprocessing ?? PREPROCESSING.tf,
    outputActivation: classes === 2 ? 'sigmoid' : 'softmax',
    calibration: opts.temperature ? { temperature: opts.temperature, fittedOn: 'validation', images: 10 } : null,
  });
  const files = await exportClassifier(model, manifest);
  model.dispose();
  if (opts.onnx) {
    const json = JSON.parse(Buffer.from(files['model.json']!).toString('utf8'));
    files['model.onnx'] = exportOnnx(json, files['weights.bin']!);
  }
  return files;
}

/** graft.json of `files` with its preprocessing changed (a field set to undefined is dropped). */
function withPreprocessing(files: Record<string, Uint8Array>, change: Record<string, unknown>): Uint8Array {
  const manifest = JSON.parse(Buffer.from(files['graft.json']!).toString('utf8'));
  manifest.preprocessing = { ...manifest.preprocessing, ...change };
  return new Uint8Array(Buffer.from(JSON.stringify(manifest)));
}

/** A ModelSource over in-memory files that counts reads. */
function source(files: Record<string, Uint8Array>) {
  const reads: string[] = [];
  const src: ModelSource = {
    list: async () => Object.entries(files).map(([name, b]) => ({ name, bytes: b.byteLength })),
    read: async (name) => {
      reads.push(name);
      const f = files[name];
      if (!f) throw new Error(`no ${name}`);
      return f;
    },
  };
  return { src, reads };
}

/** Images of varied sizes and formats. */
async function images(n: number, seed = 1): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const w = 20 + ((i * 7 + seed) % 40);
    const h = 18 + ((i * 11 + seed) % 30);
    const px = Buffer.alloc(w * h * 3);
    for (let k = 0; k < px.length; k++) px[k] = (k * (i + 3) * 13 + seed * 31 + ((k / 3) | 0) * 5) & 0xff;
    const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
    out.push(await (i % 3 === 0 ? img.png() : i % 3 === 1 ? img.jpeg({ quality: 90 }) : img.webp()).toBuffer());
  }
  return out;
}

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  a.forEach((row, i) => {
    expect(row.length).toBe(b[i]!.length);
    row.forEach((v, j) => (d = Math.max(d, Math.abs(v - b[i]![j]!))));
  });
  return d;
}

async function tfjsProbabilities(files: Record<string, Uint8Array>, imgs: Uint8Array[]): Promise<Float32Array[]> {
  const c = await loadClassifier(files);
  try {
    return await c.probabilities(imgs);
  } finally {
    c.dispose();
  }
}

const predictors: Predictor[] = [];
function predictor(opts: Partial<PredictorOptions> = {}) {
  const logs: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const p = new Predictor({
    cacheBytes: 64 * 1024 ** 2,
    maxBatch: 4,
    maxWaitMs: 2,
    threads: 1,
    loadTfjs: (files) => loadClassifier(files),
    log: { info: (obj, msg) => logs.push({ level: 'info', obj, msg }), warn: (obj, msg) => logs.push({ level: 'warn', obj, msg }) },
    ...opts,
  });
  predictors.push(p);
  return { p, logs };
}

let imgs: Uint8Array[];

beforeAll(async () => {
  await initBackend();
  imgs = await images(7);
});
afterAll(async () => {
  await Promise.all(predictors.map((p) => p.close()));
});

describe('Predictor on ONNX Runtime', () => {
  it('converts model.json on load and gives TF.js probabilities within 1e-4 (softmax, tf preprocessing)', async () => {
    const files = await classifierFiles(3, 1);
    const { p, logs } = predictor();
    const r = await p.predict('m1', source(files).src, imgs, 2);
    expect(r.timing.engine).toBe('onnxruntime');
    expect(r.timing.loadMs).toBeGreaterThan(0);
    expect(maxAbsDiff(r.probabilities, await tfjsProbabilities(files, imgs))).toBeLessThan(1e-4);
    expect(r.predictions).toHaveLength(imgs.length);
    for (const [i, preds] of r.predictions.entries()) {
      expect(preds).toHaveLength(2);
      expect(preds[0]!.probability).toBeGreaterThanOrEqual(preds[1]!.probability);
      expect(preds[0]!.probability).toBe(Math.max(...r.probabilities[i]!));
    }
    expect(logs).toContainEqual(expect.objectContaining({ msg: 'model loaded', obj: expect.objectContaining({ engine: 'onnxruntime', from: 'model.json' }) }));
    // Sessions run in worker threads: no fallback to the main thread was logged.
    expect(logs.filter((l) => l.level === 'warn')).toEqual([]);
    const again = await p.predict('m1', source(files).src, imgs.slice(0, 1), 1);
    expect(again.timing.loadMs).toBe(0);
  });

  it('opens model.onnx from the artifacts when present (sigmoid, caffe preprocessing)', async () => {
    const files = await classifierFiles(2, 2, { preprocessing: PREPROCESSING.caffe, onnx: true });
    const { p, logs } = predictor();
    const { src, reads } = source(files);
    const r = await p.predict('m2', src, imgs, 5);
    expect(reads).toContain('model.onnx');
    expect(reads).not.toContain('model.json');
    expect(logs).toContainEqual(expect.objectContaining({ obj: expect.objectContaining({ from: 'model.onnx' }) }));
    for (const row of r.probabilities) expect(row[0]! + row[1]!).toBeCloseTo(1, 6);
    expect(maxAbsDiff(r.probabilities, await tfjsProbabilities(files, imgs))).toBeLessThan(1e-4);
    expect(r.predictions[0]!.map((x) => x.label).sort()).toEqual(['class_0', 'class_1']);
  });

  it('serves model.int8.onnx where training kept one, model.onnx when int8 is off or the int8 file does not open', async () => {
    const files = await classifierFiles(3, 4, { onnx: true });
    // A deliberately coarse int8 model (2-bit weights), so that which one serves shows in the probabilities.
    const calibration = Float32Array.from({ length: 4 * SIZE * SIZE * 3 }, (_, i) => Math.sin(i * 0.37));
    files[INT8_FILE] = (await quantizeOnnx(files['model.onnx']!, [{ input: calibration, batch: 4 }], { weightBits: 2 })).model;
    const fp32 = await tfjsProbabilities(files, imgs);

    const int8 = predictor();
    const served = source(files);
    const r = await int8.p.predict('q1', served.src, imgs, 1);
    expect(served.reads).toContain(INT8_FILE);
    expect(served.reads).not.toContain('model.onnx');
    expect(int8.logs).toContainEqual(expect.objectContaining({ msg: 'model loaded', obj: expect.objectContaining({ from: INT8_FILE }) }));
    expect(maxAbsDiff(r.probabilities, fp32)).toBeGreaterThan(1e-3);
    // Batched with other requests, each image keeps its own int8 result, in its request's order; an undecodable
    // image fails its own request only, by its index.
    const singles = await Promise.all(imgs.map((im) => int8.p.predict('q1', served.src, [im], 1)));
    const bad = [imgs[3]!, Buffer.from('not an image'), imgs[1]!];
    const [mixed, reversed, failed] = await Promise.allSettled([
      int8.p.predict('q1', served.src, imgs, 1),
      int8.p.predict('q1', served.src, [...imgs].reverse(), 1),
      int8.p.predict('q1', served.src, bad, 1),
    ]);
    const perImage = singles.map((x) => x.probabilities[0]!);
    expect(maxAbsDiff((mixed as PromiseFulfilledResult<any>).value.probabilities, perImage)).toBeLessThan(1e-5);
    expect(maxAbsDiff((reversed as PromiseFulfilledResult<any>).value.probabilities, [...perImage].reverse())).toBeLessThan(1e-5);
    expect((failed as PromiseRejectedResult).reason.index).toBe(1);

    const off = predictor({ int8: false });
    const plain = source(files);
    expect(maxAbsDiff((await off.p.predict('q2', plain.src, imgs, 1)).probabilities, fp32)).toBeLessThan(1e-4);
    expect(plain.reads).not.toContain(INT8_FILE);

    const broken = predictor();
    const r3 = await broken.p.predict('q3', source({ ...files, [INT8_FILE]: new Uint8Array([8, 1, 2]) }).src, imgs, 1);
    expect(maxAbsDiff(r3.probabilities, fp32)).toBeLessThan(1e-4);
    expect(broken.logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: expect.stringContaining(`${INT8_FILE} does not open`) }));
  });

  it("applies graft.json's calibration temperature on both engines, keeping the top label", async () => {
    for (const classes of [2, 3]) {
      const raw = await classifierFiles(classes, 5);
      const calibrated = await classifierFiles(classes, 5, { temperature: 2.5 });
      const { p } = predictor();
      const before = await p.predict(`raw${classes}`, source(raw).src, imgs, 1);
      const after = await p.predict(`cal${classes}`, source(calibrated).src, imgs, 1);
      expect(after.timing.engine).toBe('onnxruntime');
      expect(maxAbsDiff(after.probabilities, before.probabilities.map((q) => applyTemperature(q, 2.5)))).toBeLessThan(1e-5);
      expect(maxAbsDiff(after.probabilities, before.probabilities)).toBeGreaterThan(1e-3);
      expect(after.predictions.map((x) => x[0]!.label)).toEqual(before.predictions.map((x) => x[0]!.label));
      expect(maxAbsDiff(await tfjsProbabilities(calibrated, imgs), after.probabilities)).toBeLessThan(1e-4);
    }
  });

  it('refuses a manifest whose temperature is not a positive number', async () => {
    const files = await classifierFiles(2, 6);
    const m = JSON.parse(Buffer.from(files['graft.json']!).toString('utf8'));
    files['graft.json'] = new Uint8Array(Buffer.from(JSON.stringify({ ...m, calibration: { temperature: -1 } })));
    const { p } = predictor();
    await expect(p.predict('bad-t', source(files).src, imgs, 1)).rejects.toThrow(/temperature/);
  });

  it('gives each of many concurrent requests its own results, batched together', async () => {
    const files = await classifierFiles(4, 3, { preprocessing: PREPROCESSING.torch });
    const sizes: number[] = [];
    const { p } = predictor({ onBatch: (n, engine) => engine === 'onnxruntime' && sizes.push(n) });
    const expected = await tfjsProbabilities(files, imgs);
    const requests = Array.from({ length: 12 }, (_, i) => [i % imgs.length, (i * 3 + 1) % imgs.length].slice(0, 1 + (i % 2)));
    const results = await Promise.all(requests.map((idx) => p.predict('m3', source(files).src, idx.map((j) => imgs[j]!), 4)));
    results.forEach((r, i) => {
      expect(maxAbsDiff(r.probabilities, requests[i]!.map((j) => expected[j]!))).toBeLessThan(1e-4);
      expect(r.timing.batchSize).toBeGreaterThanOrEqual(1);
      expect(r.timing.batchSize).toBeLessThanOrEqual(4);
      expect(r.timing.decodeMs).toBeGreaterThan(0);
    });
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(requests.flat().length);
  });

  it('runs batches in as many worker threads as it is given, with the same answers', async () => {
    const files = await classifierFiles(3, 5);
    const { p, logs } = predictor({ workers: 2, threads: 1 });
    const expected = await tfjsProbabilities(files, imgs);
    const results = await Promise.all(imgs.map((img) => p.predict('m2w', source(files).src, [img], 3)));
    expect(maxAbsDiff(results.map((r) => r.probabilities[0]!), expected)).toBeLessThan(1e-4);
    expect(logs.find((l) => /worker thread/.test(l.msg))?.obj).toEqual({ workers: 2, threads: 1 });
  });

  it("fails a request with an undecodable image by that image's index, and no other request", async () => {
    const files = await classifierFiles(3, 4);
    const { p } = predictor();
    const bad = [imgs[0]!, imgs[1]!, Buffer.from('garbage'), imgs[2]!];
    const [failed, fine] = await Promise.allSettled([p.predict('m4', source(files).src, bad, 1), p.predict('m4', source(files).src, imgs.slice(0, 3), 1)]);
    expect(failed.status).toBe('rejected');
    expect((failed as PromiseRejectedResult).reason.index).toBe(2);
    expect(fine.status).toBe('fulfilled');
    expect((fine as PromiseFulfilledResult<any>).value.predictions).toHaveLength(3);
  });

  it('evicts models by bytes: a second model over the bound pushes the first out, which then loads again', async () => {
    const a = await classifierFiles(3, 5, { onnx: true });
    const b = await classifierFiles(3, 6, { onnx: true });
    const { p } = predictor({ cacheBytes: Math.round(a['model.onnx']!.byteLength * 1.5) });
    const srcA = source(a);
    await p.predict('a', srcA.src, imgs.slice(0, 1), 1);
    await p.predict('b', source(b).src, imgs.slice(0, 1), 1);
    expect(p.cachedModels()).toEqual(['b']);
    expect(p.cachedBytes).toBe(b['model.onnx']!.byteLength);
    const r = await p.predict('a', srcA.src, imgs.slice(0, 2), 1);
    expect(srcA.reads.filter((n) => n === 'model.onnx')).toHaveLength(2);
    expect(r.timing.loadMs).toBeGreaterThan(0);
    expect(p.cachedModels()).toEqual(['a']);
  });
});

describe('Predictor fallback to TF.js', () => {
  it('serves a model the converter cannot express with TF.js, saying why', async () => {
    const files = await classifierFiles(3, 7, { extra: 'upsampling' });
    const { p, logs } = predictor();
    const r = await p.predict('m5', source(files).src, imgs, 3);
    expect(r.timing.engine).toBe('tfjs');
    const warning = logs.find((l) => l.level === 'warn');
    expect(warning?.msg).toMatch(/TensorFlow\.js/);
    expect(String(warning?.obj.reason)).toMatch(/UpSampling2D/);
    expect(maxAbsDiff(r.probabilities, await tfjsProbabilities(files, imgs))).toBe(0);
  });

  it("resizes with the filter graft.json names, as TF.js does, and refuses one it does not have", async () => {
    const files = await classifierFiles(3, 4, { preprocessing: { ...PREPROCESSING.tf, resizeKernel: 'linear' }, onnx: true });
    expect(JSON.parse(Buffer.from(files['graft.json']!).toString('utf8')).preprocessing.resizeKernel).toBe('linear');
    const lanczos = { ...files, 'graft.json': withPreprocessing(files, { resizeKernel: undefined }) };
    const { p } = predictor();
    const linear = await p.predict('k1', source(files).src, imgs, 1);
    const old = await p.predict('k2', source(lanczos).src, imgs, 1);
    expect(linear.timing.engine).toBe('onnxruntime');
    expect(maxAbsDiff(linear.probabilities, await tfjsProbabilities(files, imgs))).toBeLessThan(1e-4);
    expect(maxAbsDiff(old.probabilities, await tfjsProbabilities(lanczos, imgs))).toBeLessThan(1e-4);
    // The two filters give other pixels, so other probabilities.
    expect(maxAbsDiff(linear.probabilities, old.probabilities)).toBeGreaterThan(1e-4);
    const triangleFiles = { ...files, 'graft.json': withPreprocessing(files, { resizeKernel: 'triangle' }) };
    const triangle = await p.predict('k4', source(triangleFiles).src, imgs, 1);
    expect(maxAbsDiff(triangle.probabilities, await tfjsProbabilities(triangleFiles, imgs))).toBeLessThan(1e-4);
    expect(maxAbsDiff(triangle.probabilities, linear.probabilities)).toBeGreaterThan(1e-4);
    const bogus = { ...files, 'graft.json': withPreprocessing(files, { resizeKernel: 'bicubic' }) };
    await expect(predictor({ engine: 'onnx' }).p.predict('k3', source(bogus).src, imgs.slice(0, 1), 1)).rejects.toThrow(/resizeKernel must be one of lanczos3, linear, triangle, got "bicubic"/);
  });

  it('leaves a model whose graft.json asks for an image pipeline it does not implement to TF.js', async () => {
    const files = await classifierFiles(3, 9, { onnx: true });
    files['graft.json'] = withPreprocessing(files, { resize: 'center_crop' });
    const { p, logs } = predictor();
    const r = await p.predict('m8', source(files).src, imgs.slice(0, 2), 1);
    expect(r.timing.engine).toBe('tfjs');
    expect(String(logs.find((l) => l.level === 'warn')?.obj.reason)).toMatch(/resize "center_crop"/);
  });

  it("does not fall back when the engine is 'onnx'", async () => {
    const files = await classifierFiles(3, 7, { extra: 'upsampling' });
    const { p } = predictor({ engine: 'onnx' });
    await expect(p.predict('m6', source(files).src, imgs.slice(0, 1), 1)).rejects.toThrow(/ONNX Runtime cannot serve model m6: .*UpSampling2D/);
  });

  it("serves with TF.js alone when the engine is 'tfjs', reporting bad images by index too", async () => {
    const files = await classifierFiles(2, 8, { onnx: true });
    const { p } = predictor({ engine: 'tfjs' });
    const { src, reads } = source(files);
    const r = await p.predict('m7', src, imgs.slice(0, 2), 1);
    expect(r.timing.engine).toBe('tfjs');
    expect(reads).not.toContain('model.onnx');
    const err = await p.predict('m7', src, [imgs[0]!, Buffer.from('nope')], 1).catch((e) => e);
    expect(err.index).toBe(1);
  });
});

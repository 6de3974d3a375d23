// How sure a trained model is and what it says of images of none of its classes, on real data the model never saw.
//
// The model is either trained here (the default: a feature-extraction classifier on one dataset's train split,
// validation carved from it, its validation folder held out as the test split, served by the Predictor as the API
// serves it: ONNX Runtime, features and bank dot products in the same pass), or, with --model, one that a running
// Graft serves, trained as a user trains (for example `graft train` with the default config on a dataset whose test
// split is the same held-out folder); its images then go through /predict and /explain over HTTP.
//
// Either way it reports the expected calibration error (15 bins) on the test split before and after the temperature
// fitted on validation; the share of out-of-distribution flags on the held-out images against images of other
// datasets (their validation folders, `--others` images of each, spread over their classes); and Grad-CAM on
// composites of held-out images (one class's image on each half): how often each class's map lies mostly over its
// own half, the mean share of the map on that half, and how long one explanation takes.
//
//   npx tsx bench/know-your-model.ts [--data hymenoptera] [--other flowers[,dogs-vs-cats…]] [--backbone mobilenet_v1_0.75_224]
//                                    [--epochs 10] [--others 200] [--composites 10]
//   npx tsx bench/know-your-model.ts --model mdl_… [--url http://127.0.0.1:8080] [--key KEY] --data dogs-vs-cats …
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { exportOnnx, Predictor, readBank, withOodOutput, type CalibrationReport } from '@graft/inference';
import sharp from 'sharp';
import { initBackend, loadClassifier, loadExplainer, train } from '@graft/vision';
import { resolveConfig } from '@graft/contract';
import { classLabels, listSplit } from './splits';
import { loadConfigOrExit } from '@graft/config';

// GRAFT_TF_BACKEND, GRAFT_TRAIN_THREADS and GRAFT_FROZEN_ENGINE, checked as the services check them.
const { training } = loadConfigOrExit();

const { values: args } = parseArgs({
  options: {
    data: { type: 'string', default: 'hymenoptera' },
    other: { type: 'string', default: 'flowers' },
    backbone: { type: 'string', default: 'mobilenet_v1_0.75_224' },
    epochs: { type: 'string', default: '10' },
    others: { type: 'string', default: '200' },
    composites: { type: 'string', default: '10' },
    model: { type: 'string' },
    url: { type: 'string', default: process.env.GRAFT_URL ?? 'http://127.0.0.1:8080' },
    key: { type: 'string', default: process.env.GRAFT_API_KEY ?? '' },
  },
});

const SHARED = resolve(import.meta.dirname, '../../shared');
const dataset = join(SHARED, 'datasets', args.data!);
const otherNames = args.other!.split(',').filter(Boolean);
const read = (key: string) => new Uint8Array(readFileSync(key));

/** A trained model as the reports use it, wherever it runs. */
interface Served {
  /** Whether each image is flagged as none of the classes. */
  flags(images: Uint8Array[]): Promise<boolean[]>;
  explain(image: Uint8Array, label: string): Promise<{ heatmap: { width: number; values: number[] } }>;
  close(): Promise<void>;
}

async function main(): Promise<void> {
  const labels = classLabels(dataset);
  const test = listSplit(join(dataset, 'validation'), labels);
  const served = args.model ? await overHttp(args.model, labels) : await trainedHere(labels, test);
  try {
    await outOfDistribution(served, test);
    await composites(served, labels, test);
  } finally {
    await served.close();
  }
}

/** A split's evaluation: accuracy, loss and expected calibration error before and after the temperature. */
function printCalibration(split: string, m: { accuracy: number; loss: number; calibration: CalibrationReport }): void {
  const c = m.calibration;
  console.log(
    `${split}: accuracy ${m.accuracy.toFixed(4)}, loss ${m.loss.toFixed(4)} -> ${c.calibratedLoss.toFixed(4)}, ` +
      `ECE ${c.ece.toFixed(4)} -> ${c.calibratedEce.toFixed(4)} (temperature ${c.temperature.toFixed(3)})`,
  );
}

/** Trains a feature-extraction classifier here and serves it with the Predictor and the Explainer. */
async function trainedHere(labels: string[], test: { key: string; label: number }[]): Promise<Served> {
  await initBackend({ prefer: training.tfBackend ?? undefined });
  const started = performance.now();
  const result = await train({
    config: resolveConfig({
      method: 'feature_extraction',
      backbone: args.backbone,
      featureExtraction: { epochs: Number(args.epochs) },
      split: { validation: 0.25 },
    }),
    labels,
    splits: { train: listSplit(join(dataset, 'train'), labels), validation: [], test },
    readImage: async (key) => read(key),
    backbones: join(SHARED, 'models'),
    threads: training.threads,
    frozenEngine: training.frozenEngine,
  });
  console.log(`# ${args.data}: ${args.backbone}, trained in ${((performance.now() - started) / 1000).toFixed(0)} s, images ${JSON.stringify(result.counts)}`);
  console.log(`temperature fitted on ${result.graft.calibration!.images} validation images`);
  for (const split of ['test', 'validation'] as const) {
    const m = result[split]!;
    printCalibration(split, { accuracy: m.accuracy, loss: m.loss, calibration: m.calibration! });
  }

  // Served as the worker publishes it: model.onnx with the features appended.
  const files: Record<string, Uint8Array> = { ...result.artifacts };
  const ood = result.graft.outOfDistribution!;
  const json = JSON.parse(Buffer.from(files['model.json']!).toString('utf8'));
  const withOod = withOodOutput(json, files['weights.bin']!, ood, readBank(files[ood.bankFile]!, ood));
  files['model.onnx'] = exportOnnx(withOod.modelJson, withOod.weights);
  console.log(`out-of-distribution threshold ${ood.threshold.toFixed(4)} (bank of ${ood.bankSize} training images, ${ood.featureSize} features)`);
  const source = {
    list: async () => Object.entries(files).map(([name, b]) => ({ name, bytes: b.byteLength })),
    read: async (name: string) => files[name]!,
  };
  const predictor = new Predictor({ cacheBytes: 1 << 28, engine: 'onnx', loadTfjs: (f) => loadClassifier(f) });
  const explainer = await loadExplainer(files);
  return {
    flags: async (images) => (await predictor.predict('m', source, images, 1)).outOfDistribution!.map((o) => o.flagged),
    explain: (image, label) => explainer.explain(image, label),
    close: async () => {
      explainer.dispose();
      await predictor.close();
    },
  };
}

/** A model that a running Graft serves: its job's metrics, /predict and /explain. */
async function overHttp(modelId: string, labels: string[]): Promise<Served> {
  const headers: Record<string, string> = args.key ? { authorization: `Bearer ${args.key}` } : {};
  const call = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${args.url}${path}`, { ...init, headers: { ...headers, ...(init.headers as Record<string, string>) } });
    const body = await res.json();
    if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
    return body;
  };
  const model = await call(`/v1/models/${modelId}`);
  if (JSON.stringify(model.labels) !== JSON.stringify(labels)) throw new Error(`model ${modelId} has labels ${model.labels}, not ${labels}`);
  const job = await call(`/v1/jobs/${model.jobId}`);
  const graft = await call(`/v1/models/${modelId}/artifacts/graft.json`);
  console.log(`# ${args.data}: model ${modelId} (${job.config.method}, ${job.config.backbone}) served at ${args.url}`);
  for (const split of ['test', 'validation'] as const) if (job[split]?.calibration) printCalibration(split, job[split]);
  const ood = graft.outOfDistribution;
  console.log(`out-of-distribution threshold ${ood.threshold.toFixed(4)} (bank of ${ood.bankSize} training images, ${ood.featureSize} features)`);
  return {
    flags: async (images) => {
      const form = new FormData();
      for (const im of images) form.append('image', new Blob([im as BlobPart], { type: 'image/jpeg' }), 'image.jpg');
      const r = await call(`/v1/models/${modelId}/predict?topK=1`, { method: 'POST', body: form });
      return r.results.map((x: { outOfDistribution: { flagged: boolean } }) => x.outOfDistribution.flagged);
    },
    explain: (image, label) =>
      call(`/v1/models/${modelId}/explain?label=${encodeURIComponent(label)}`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: image as BodyInit }),
    close: async () => {},
  };
}

async function outOfDistribution(served: Served, test: { key: string }[]): Promise<void> {
  const share = async (refs: { key: string }[]) => {
    let flagged = 0;
    for (let i = 0; i < refs.length; i += 16) flagged += (await served.flags(refs.slice(i, i + 16).map((x) => read(x.key)))).filter(Boolean).length;
    return flagged / refs.length;
  };
  console.log(`flagged: held-out ${args.data} test images ${(100 * (await share(test))).toFixed(1)}% of ${test.length}`);
  for (const name of otherNames) {
    const dir = join(SHARED, 'datasets', name);
    const others = listSplit(join(dir, 'validation'), classLabels(dir));
    const step = Math.max(1, Math.floor(others.length / Number(args.others)));
    const picked = others.filter((_, i) => i % step === 0).slice(0, Number(args.others));
    console.log(`flagged: ${name} images ${(100 * (await share(picked))).toFixed(1)}% of ${picked.length}`);
  }
}

/** Side by side at 224 x 224 each. */
async function composite(left: string, right: string): Promise<Uint8Array> {
  const half = (key: string) => sharp(read(key)).rotate().resize(224, 224, { fit: 'cover' }).removeAlpha().raw().toBuffer();
  const [l, r] = await Promise.all([half(left), half(right)]);
  return new Uint8Array(
    await sharp({ create: { width: 448, height: 224, channels: 3, background: '#000' } })
      .composite([
        { input: l, raw: { width: 224, height: 224, channels: 3 }, left: 0, top: 0 },
        { input: r, raw: { width: 224, height: 224, channels: 3 }, left: 224, top: 0 },
      ])
      .jpeg()
      .toBuffer(),
  );
}

/** The share of a heatmap's mass on its left half (a middle column, where the width is odd, counts half). */
function leftShare({ width, values }: { width: number; values: number[] }): number {
  let l = 0;
  let all = 0;
  values.forEach((v, k) => {
    const x = k % width;
    all += v;
    l += 2 * x + 1 < width ? v : 2 * x + 1 === width ? v / 2 : 0;
  });
  return all ? l / all : 0.5;
}

async function composites(served: Served, labels: string[], test: { key: string; label: number }[]): Promise<void> {
  const a = test.filter((t) => t.label === 0);
  const b = test.filter((t) => t.label === 1);
  const n = Math.min(Number(args.composites), a.length, b.length);
  // Spread over the held-out images rather than the first few of each class.
  const pick = (list: typeof a, i: number) => list[Math.floor((i * list.length) / n)]!;
  const times: number[] = [];
  const shares: number[] = [];
  for (let i = 0; i < n; i++) {
    // Class 0 on the left for even i, on the right for odd i.
    const [left, right] = i % 2 === 0 ? [pick(a, i), pick(b, i)] : [pick(b, i), pick(a, i)];
    const image = await composite(left.key, right.key);
    for (const side of [left, right]) {
      const t = performance.now();
      const e = await served.explain(image, labels[side.label]!);
      times.push(performance.now() - t);
      const onLeft = leftShare(e.heatmap);
      shares.push(side === left ? onLeft : 1 - onLeft);
    }
  }
  times.sort((x, y) => x - y);
  const own = shares.filter((s) => s > 0.5).length;
  const mean = shares.reduce((x, y) => x + y, 0) / shares.length;
  console.log(
    `Grad-CAM on ${n} composites: ${own} of ${shares.length} class maps lie mostly over their own half (mean share there ${(100 * mean).toFixed(1)}%, ` +
      `lowest ${(100 * Math.min(...shares)).toFixed(1)}%); explain p50 ${times[Math.floor(times.length / 2)]!.toFixed(0)} ms, max ${times.at(-1)!.toFixed(0)} ms`,
  );
}

await main();

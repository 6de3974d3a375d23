// How sure a trained model is and what it says of images of none of its classes, on real data: trains a
// feature-extraction classifier on one dataset's train split (validation carved from it, its validation folder
// held out as the test split), then reports the expected calibration error (15 bins) on the test split before and
// after the temperature fitted on validation, and, served by the Predictor as the API serves it (ONNX Runtime,
// features and bank dot products in the same pass), the share of out-of-distribution flags on the held-out images against images of
// another dataset; then Grad-CAM on composites (one class's image on each half): how often each class's map lies
// mostly over its own half, and how long one explanation takes.
//
//   npx tsx bench/know-your-model.ts [--data hymenoptera] [--other flowers] [--backbone mobilenet_v1_0.75_224]
//                                    [--epochs 10] [--others 200]
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { exportOnnx, Predictor, readBank, withOodOutput } from '@graft/inference';
import sharp from 'sharp';
import { initBackend, loadClassifier, loadExplainer, train } from '@graft/vision';
import { resolveConfig } from '@graft/vision/config';
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
  },
});

const SHARED = resolve(import.meta.dirname, '../../shared');
const dataset = join(SHARED, 'datasets', args.data!);
const other = join(SHARED, 'datasets', args.other!);
const read = (key: string) => new Uint8Array(readFileSync(key));

async function main(): Promise<void> {
  await initBackend({ prefer: training.tfBackend ?? undefined });
  const labels = classLabels(dataset);
  const test = listSplit(join(dataset, 'validation'), labels);
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
  const c = result.test!.calibration!;
  const v = result.validation!.calibration!;
  console.log(`temperature ${c.temperature.toFixed(3)} (fitted on ${result.graft.calibration!.images} validation images)`);
  console.log(`test: accuracy ${result.test!.accuracy.toFixed(4)}, loss ${result.test!.loss.toFixed(4)} -> ${c.calibratedLoss.toFixed(4)}, ECE ${c.ece.toFixed(4)} -> ${c.calibratedEce.toFixed(4)}`);
  console.log(`validation: ECE ${v.ece.toFixed(4)} -> ${v.calibratedEce.toFixed(4)}`);

  // Served as the worker publishes it: model.onnx with the features appended.
  const files: Record<string, Uint8Array> = { ...result.artifacts };
  const ood = result.graft.outOfDistribution!;
  const json = JSON.parse(Buffer.from(files['model.json']!).toString('utf8'));
  const served = withOodOutput(json, files['weights.bin']!, ood, readBank(files[ood.bankFile]!, ood));
  files['model.onnx'] = exportOnnx(served.modelJson, served.weights);
  const source = {
    list: async () => Object.entries(files).map(([name, b]) => ({ name, bytes: b.byteLength })),
    read: async (name: string) => files[name]!,
  };
  const predictor = new Predictor({ cacheBytes: 1 << 28, engine: 'onnx', loadTfjs: (f) => loadClassifier(f) });
  try {
    const otherLabels = classLabels(other);
    const others = listSplit(join(other, 'validation'), otherLabels);
    const step = Math.max(1, Math.floor(others.length / Number(args.others)));
    const picked = others.filter((_, i) => i % step === 0).slice(0, Number(args.others));
    const share = async (refs: { key: string }[]) => {
      let flagged = 0;
      for (let i = 0; i < refs.length; i += 16) {
        const r = await predictor.predict('m', source, refs.slice(i, i + 16).map((x) => read(x.key)), 1);
        flagged += r.outOfDistribution!.filter((o) => o.flagged).length;
      }
      return flagged / refs.length;
    };
    console.log(`out-of-distribution threshold ${ood.threshold.toFixed(4)} (bank of ${ood.bankSize} training images, ${ood.featureSize} features)`);
    console.log(`flagged: held-out ${args.data} test images ${(100 * (await share(test))).toFixed(1)}% of ${test.length}; ${args.other} images ${(100 * (await share(picked))).toFixed(1)}% of ${picked.length}`);
  } finally {
    await predictor.close();
  }
  await composites(files, labels, test);
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

async function composites(files: Record<string, Uint8Array>, labels: string[], test: { key: string; label: number }[]): Promise<void> {
  const ex = await loadExplainer(files);
  const a = test.filter((t) => t.label === 0);
  const b = test.filter((t) => t.label === 1);
  const n = Math.min(10, a.length, b.length);
  const times: number[] = [];
  let own = 0;
  let maps = 0;
  for (let i = 0; i < n; i++) {
    // Class 0 on the left for even i, on the right for odd i.
    const [left, right] = i % 2 === 0 ? [a[i]!, b[i]!] : [b[i]!, a[i]!];
    const image = await composite(left.key, right.key);
    for (const side of [left, right]) {
      const t = performance.now();
      const e = await ex.explain(image, labels[side.label]);
      times.push(performance.now() - t);
      const { width, values } = e.heatmap;
      let l = 0;
      let all = 0;
      values.forEach((v, k) => {
        all += v;
        if (k % width < width / 2) l += v;
      });
      const onLeft = all ? l / all : 0.5;
      if ((side === left ? onLeft : 1 - onLeft) > 0.5) own++;
      maps++;
    }
  }
  ex.dispose();
  times.sort((x, y) => x - y);
  console.log(`Grad-CAM on ${n} composites: ${own} of ${maps} class maps lie mostly over their own half; explain p50 ${times[Math.floor(times.length / 2)]!.toFixed(0)} ms, max ${times.at(-1)!.toFixed(0)} ms`);
}

await main();

// Likely label errors on a real dataset with labels flipped at random: a share of the training images is given the
// other label (another class, drawn at random), a training run of the vision package (train(), as the worker runs
// it) finds its label issues, and the ranking is compared with what was flipped:
//   recall@1.5n     share of the n flipped images among the first 1.5n of the ranking
//   precision@n     share of the first n of the ranking that were flipped
// and the time label issues add to the run (k-fold cross-validation and ranking), against the whole run.
// The run is a feature-extraction job with the default recipe (cached augmentation, 5 copies, 30 head epochs);
// a default job also fine-tunes, so there the share is smaller still.
// Usage: tsx bench/label-issues.ts [dataset folder] [share flipped] [seed] [backbone]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend, train, type ImageRef } from '../packages/vision/src/index';
import { resolveConfig } from '../packages/contract/src/training-config';
import { createRng, permutation } from '../packages/vision/src/random';

const folder = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '../../shared/datasets/dogs-vs-cats'));
const share = Number(process.argv[3] ?? 0.08);
const random = createRng(Number(process.argv[4] ?? 1));
const backbone = process.argv[5] ?? 'mobilenet_v1_0.75_224';
const models = path.join(import.meta.dirname, '../../shared/models');

const labels = fs.readdirSync(path.join(folder, 'train')).sort();
const splits: Record<'train' | 'validation' | 'test', ImageRef[]> = { train: [], validation: [], test: [] };
for (const split of ['train', 'validation', 'test'] as const) {
  if (!fs.existsSync(path.join(folder, split))) continue;
  labels.forEach((label, i) => {
    for (const f of fs.readdirSync(path.join(folder, split, label)).sort()) splits[split].push({ key: path.join(folder, split, label, f), label: i });
  });
}
// Flip `share` of the training labels, each to another class drawn at random.
const flipped = new Map<string, number>(); // key -> true label
const order = permutation(splits.train.length, random);
for (const i of order.slice(0, Math.round(share * splits.train.length))) {
  const ref = splits.train[i]!;
  const others = labels.map((_, j) => j).filter((j) => j !== ref.label);
  flipped.set(ref.key, ref.label);
  splits.train[i] = { key: ref.key, label: others[Math.floor(random() * others.length)]! };
}

const backend = await initBackend({});
const config = resolveConfig({ method: 'feature_extraction', backbone });
const t0 = performance.now();
const result = await train({
  config,
  labels,
  splits,
  readImage: (key) => fs.promises.readFile(key),
  backbones: models,
});
const jobSeconds = (performance.now() - t0) / 1000;
const issues = result.labelIssues;
if (!issues.available) throw new Error(`no label issues: ${issues.reason}`);

const n = flipped.size;
const trainIssues = issues.items.filter((it) => it.split === 'train');
const hits = (k: number) => trainIssues.slice(0, k).filter((it) => flipped.has(it.key)).length;
const suggestedRight = trainIssues.filter((it) => flipped.get(it.key) === it.suggested).length;
const round = (x: number, d = 3) => +x.toFixed(d);
console.log(
  JSON.stringify(
    {
      dataset: path.basename(folder),
      backbone,
      backend,
      train: splits.train.length,
      validation: splits.validation.length,
      flipped: n,
      flaggedTrain: trainIssues.length,
      flaggedValidation: issues.items.length - trainIssues.length,
      recallAt1_5n: round(hits(Math.ceil(1.5 * n)) / n),
      precisionAtN: round(hits(n) / n),
      recallAll: round(hits(trainIssues.length) / n),
      suggestedRight: `${suggestedRight} of ${hits(trainIssues.length)} flipped found`,
      validationAccuracy: result.validation ? round(result.validation.accuracy) : null,
      labelIssuesSeconds: round(issues.seconds, 2),
      jobSeconds: round(jobSeconds, 1),
      labelIssuesShareOfJob: round(issues.seconds / (jobSeconds - issues.seconds)),
      load: os.loadavg().map((l) => round(l, 1)),
      cpus: os.cpus().length,
    },
    null,
    2,
  ),
);

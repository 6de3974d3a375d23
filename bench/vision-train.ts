// Trains a classifier on a `<split>/<class>/*` image folder (default Dogs vs Cats: train 1000 + 1000, validation
// 500 + 500; `--data ../shared/datasets/hymenoptera` for ants vs bees) with the vision package, as a job with the
// API's default config does, and prints wall time, time per phase, feature-extraction speed, validation
// accuracy and the per-epoch history.
//
//   npx tsx bench/vision-train.ts [--method fine_tuning|feature_extraction|scratch] [--backbone NAME]
//        [--config '{"fineTuning":{"epochs":10}}'] [--holdout 0.5] [--data DIR] [--models DIR] [--backend wasm]
//
// The config starts from the API defaults (resolveConfig) with the flags merged in. --holdout f moves a
// stratified share f of the validation images to a test split that training never sees (early stopping then
// uses the rest), so the test accuracy printed is that of images the run has not looked at in any way. --holdout 1
// holds out the whole validation split and carves validation out of train instead.
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { classLabels, folderTraining, listSplit } from './splits';
import { initBackend, train, type ImageRef } from '@graft/vision';
import { PhaseTimes } from './phase-times';
import { resolveConfig, type TrainingConfigInput } from '@graft/contract';
import { loadConfigOrExit } from '@graft/config';
import { setHeapGrowth } from '@graft/config/heap';

// GRAFT_TF_BACKEND, GRAFT_TRAIN_THREADS and GRAFT_FROZEN_ENGINE, checked as the services check them; the heap's
// growth set as a training process sets it (GRAFT_HEAP_GROWTH_PERCENT).
const { training, heapGrowthPercent } = loadConfigOrExit();
setHeapGrowth(heapGrowthPercent);

const { values: args } = parseArgs({
  options: {
    method: { type: 'string' },
    backbone: { type: 'string' },
    config: { type: 'string', default: '{}' },
    holdout: { type: 'string', default: '0' },
    data: { type: 'string', default: resolve(import.meta.dirname, '../../shared/datasets/dogs-vs-cats') },
    models: { type: 'string', default: resolve(import.meta.dirname, '../../shared/models') },
    backend: { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
});

const labels = classLabels(args.data!);
const validation = listSplit(join(args.data!, 'validation'), labels);
const holdout = Number(args.holdout);
// Every k-th image of each class goes to the held-out test split; with --holdout 1 all of them (validation is then
// carved out of train, as the API does for a dataset without a validation split).
const every = holdout >= 1 ? 1 : holdout > 0 ? Math.max(2, Math.round(1 / holdout)) : 0;
const perClassIndex = new Map<number, number>();
const isTest = (r: ImageRef) => {
  const i = perClassIndex.get(r.label) ?? 0;
  perClassIndex.set(r.label, i + 1);
  return every > 0 && i % every === 0;
};
const tagged = validation.map((r) => ({ r, test: isTest(r) }));
const splits = {
  train: listSplit(join(args.data!, 'train'), labels),
  validation: tagged.filter((t) => !t.test).map((t) => t.r),
  test: tagged.filter((t) => t.test).map((t) => t.r),
};
const input: TrainingConfigInput = JSON.parse(args.config!);
if (args.method) input.method = args.method as TrainingConfigInput['method'];
if (args.backbone) input.backbone = args.backbone;
const config = resolveConfig(input);

const started = performance.now();
const phases = new PhaseTimes();
let extraction: object | null = null;
const log = (obj: object, msg: string) => {
  if (msg === 'features extracted') extraction = obj;
  if (!args.quiet || /extracted|backend|frozen|finished|evaluated|ONNX/.test(msg)) {
    console.log(`[${((performance.now() - started) / 1000).toFixed(1)}s] ${msg} ${JSON.stringify(obj)}`);
  }
};
const backend = await initBackend({ prefer: args.backend ?? training.tfBackend ?? undefined, log });
const result = await train({
  config,
  labels,
  splits,
  ...folderTraining(args.models!, training),
  log,
  onEvent: phases.onEvent,
});
const wall = (performance.now() - started) / 1000;
const phaseSeconds = phases.finish();

const best = (phase: string) => {
  const rows = result.history.filter((r) => r.phase === phase);
  if (!rows.length) return null;
  const b = rows.reduce((a, r) => ((r.valLoss ?? Infinity) < (a.valLoss ?? Infinity) ? r : a));
  return { epochs: rows.length, bestEpoch: b.epoch, valLoss: b.valLoss, valAccuracy: b.valAccuracy, lastTrainAccuracy: rows.at(-1)!.accuracy };
};
console.log(
  JSON.stringify(
    {
      backend,
      method: config.method,
      backbone: config.method === 'scratch' ? null : config.backbone,
      images: result.counts,
      config: { featureExtraction: config.featureExtraction, fineTuning: config.fineTuning, augmentation: config.augmentation, head: config.head, earlyStopping: config.earlyStopping },
      wallSeconds: Number(wall.toFixed(1)),
      phaseSeconds: Object.fromEntries(Object.entries(phaseSeconds).map(([k, v]) => [k, Number(v!.toFixed(1))])),
      extraction,
      training_head: best('training_head'),
      fine_tuning: best('fine_tuning'),
      validation: result.validation,
      test: result.test ? { loss: result.test.loss, accuracy: result.test.accuracy, confusionMatrix: result.test.confusionMatrix } : null,
      history: result.history.map((r) => [r.phase === 'training_head' ? 'H' : 'F', r.epoch, +r.loss.toFixed(4), +r.accuracy.toFixed(4), r.valLoss === null ? null : +r.valLoss.toFixed(4), r.valAccuracy === null ? null : +r.valAccuracy.toFixed(4), +r.seconds.toFixed(1)]),
    },
    null,
    1,
  ),
);

// Trains a classifier on the hymenoptera image set (ants vs bees: train 244, validation 153) with the vision
// package and prints wall time, feature-extraction speed and validation accuracy.
//
//   npx tsx bench/vision-hymenoptera.ts [--method feature_extraction|fine_tuning|scratch] [--backbone NAME]
//        [--config '{"featureExtraction":{"learningRate":1e-4}}'] [--data DIR] [--models DIR] [--backend wasm]
//
// The config starts from the API defaults (resolveConfig) with the flags merged in.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, train, type ImageRef, type TrainEvent } from '@graft/vision';
import { resolveConfig, type TrainingConfigInput } from '@graft/vision/config';

const { values: args } = parseArgs({
  options: {
    method: { type: 'string', default: 'feature_extraction' },
    backbone: { type: 'string' },
    config: { type: 'string', default: '{}' },
    data: { type: 'string', default: resolve(import.meta.dirname, '../../shared/datasets/hymenoptera') },
    models: { type: 'string', default: resolve(import.meta.dirname, '../../shared/models') },
    backend: { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
});

function listSplit(dir: string, labels: string[]): ImageRef[] {
  const refs: ImageRef[] = [];
  labels.forEach((label, i) => {
    for (const f of readdirSync(join(dir, label)).sort()) refs.push({ key: join(dir, label, f), label: i });
  });
  return refs;
}

const labels = readdirSync(join(args.data!, 'train')).sort();
const splits = {
  train: listSplit(join(args.data!, 'train'), labels),
  validation: listSplit(join(args.data!, 'validation'), labels),
  test: [] as ImageRef[],
};
const input: TrainingConfigInput = { ...JSON.parse(args.config!), method: args.method as TrainingConfigInput['method'] };
if (args.backbone) input.backbone = args.backbone;
const config = resolveConfig(input);

const started = performance.now();
const phaseStarted: Record<string, number> = {};
let lastPhase = '';
const log = (obj: object, msg: string) => {
  if (!args.quiet || /extracted|backend|finished|evaluated/.test(msg)) console.log(`[${((performance.now() - started) / 1000).toFixed(1)}s] ${msg} ${JSON.stringify(obj)}`);
};
const backend = await initBackend({ prefer: args.backend, log });
const result = await train({
  config,
  labels,
  splits,
  readImage: async (key) => new Uint8Array(readFileSync(key)),
  backbones: args.models!,
  log,
  onEvent: (e: TrainEvent) => {
    if (e.type === 'phase') {
      const now = performance.now();
      if (lastPhase) phaseStarted[lastPhase] = (now - phaseStarted[lastPhase]!) / 1000;
      phaseStarted[e.phase] = now;
      lastPhase = e.phase;
    }
  },
});
const wall = (performance.now() - started) / 1000;
if (lastPhase) phaseStarted[lastPhase] = (performance.now() - phaseStarted[lastPhase]!) / 1000;

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
      backbone: config.backbone,
      images: result.counts,
      config: { featureExtraction: config.featureExtraction, fineTuning: config.fineTuning, augmentation: config.augmentation, head: config.head },
      wallSeconds: Number(wall.toFixed(1)),
      phaseSeconds: Object.fromEntries(Object.entries(phaseStarted).map(([k, v]) => [k, Number(v.toFixed(1))])),
      training_head: best('training_head'),
      fine_tuning: best('fine_tuning'),
      validation: result.validation,
      history: result.history.map((r) => [r.phase === 'training_head' ? 'H' : 'F', r.epoch, +r.loss.toFixed(3), +r.accuracy.toFixed(3), r.valLoss === null ? null : +r.valLoss.toFixed(3), r.valAccuracy === null ? null : +r.valAccuracy.toFixed(3), +r.seconds.toFixed(1)]),
    },
    null,
    1,
  ),
);

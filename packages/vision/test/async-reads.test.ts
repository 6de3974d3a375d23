// Training, checkpoints, resuming, evaluation, export and prediction read tensors only asynchronously: the webgpu
// backend in Node has no synchronous read (a dataSync() there throws). Here synchronous reads are turned off
// (initBackend's syncReads 'throw', as GRAFT_TF_SYNC_READS=throw sets it, in this thread and in every worker thread
// it starts) and a real small job runs
// through every method: scratch, feature extraction and fine-tuning, with cached and end-to-end augmentation,
// the frozen base on ONNX Runtime and on TensorFlow.js, training steps shared with a replica thread.
//
// The job uses MobileNet v1 0.25 and a few hymenoptera images from ../shared where they are there, the tiny test
// backbone and synthetic images otherwise.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { loadClassifier } from '../src/classifier';
import { resolveConfig, type TrainingConfigInput } from '@graft/contract';
import { train, type Checkpoint, type TrainOptions, type TrainResult } from '../src/train';
import type { ImageRef } from '../src/split';
import { createTinyBackboneSource, syntheticSet, TINY_BACKBONE } from './fixtures';

const SHARED = resolve(import.meta.dirname, '../../../../shared');
const MOBILENET = 'mobilenet_v1_0.25_224';
const HYMENOPTERA = join(SHARED, 'datasets/hymenoptera');
const haveShared = existsSync(join(SHARED, 'models', MOBILENET, 'model.json')) && existsSync(join(HYMENOPTERA, 'train/ants'));

interface Job {
  backbone: string;
  inputSize: number;
  backbones: string;
  labels: string[];
  splits: { train: ImageRef[]; validation: ImageRef[]; test: ImageRef[] };
  readImage(key: string): Promise<Uint8Array>;
  cleanup(): void;
}

/** The first `n` images of each class of a hymenoptera split, as references to files. */
function hymenoptera(split: string, labels: string[], n: number, skip = 0): ImageRef[] {
  return labels.flatMap((label, i) =>
    readdirSync(join(HYMENOPTERA, split, label))
      .sort()
      .slice(skip, skip + n)
      .map((f) => ({ key: join(HYMENOPTERA, split, label, f), label: i })),
  );
}

async function makeJob(): Promise<Job> {
  if (haveShared) {
    const labels = ['ants', 'bees'];
    return {
      backbone: MOBILENET,
      inputSize: 64,
      backbones: join(SHARED, 'models'),
      labels,
      splits: { train: hymenoptera('train', labels, 5), validation: hymenoptera('validation', labels, 2), test: hymenoptera('validation', labels, 2, 2) },
      readImage: async (key) => new Uint8Array(readFileSync(key)),
      cleanup: () => {},
    };
  }
  const tiny = await createTinyBackboneSource();
  const set = await syntheticSet(['red', 'blue'], { train: 5, validation: 2, test: 2 });
  return { backbone: TINY_BACKBONE, inputSize: 32, backbones: tiny.source, labels: set.labels, splits: set.splits, readImage: set.readImage, cleanup: tiny.cleanup };
}

let job: Job;

beforeAll(async () => {
  await initBackend({ syncReads: 'throw' });
  job = await makeJob();
}, 120_000);

afterAll(() => job?.cleanup());

/** Runs train() with the given frozen engine and training threads. */
async function run(
  config: TrainingConfigInput,
  engines: { threads?: number; frozen?: 'tfjs' | 'auto' } = {},
  extra: Partial<TrainOptions> = {},
): Promise<{ result: TrainResult; checkpoints: Checkpoint[]; logged: string[] }> {
  const checkpoints: Checkpoint[] = [];
  const logged: string[] = [];
  const result = await train({
    config: resolveConfig({ backbone: job.backbone, inputSize: job.inputSize, batchSize: 4, head: { units: 8, dropout: 0.1 }, seed: 3, ...config }),
    labels: job.labels,
    splits: job.splits,
    readImage: job.readImage,
    backbones: job.backbones,
    onCheckpoint: async (c) => void checkpoints.push(c),
    log: (_obj, msg) => logged.push(msg),
    threads: engines.threads ?? 1,
    frozenEngine: engines.frozen ?? 'auto',
    ...extra,
  });
  return { result, checkpoints, logged };
}

/** The training steps were shared with a replica thread from start to end. */
function expectReplicaUsed(logged: string[]): void {
  expect(logged).toContain('training steps shared with 1 worker thread(s)');
  expect(logged.filter((m) => /replica (failed|did not start)/.test(m))).toEqual([]);
}

function expectTrained(r: TrainResult, phases: string[]): void {
  expect(r.history.map((h) => `${h.phase}:${h.epoch}`)).toEqual(phases);
  expect(r.history.every((h) => Number.isFinite(h.loss) && Number.isFinite(h.valLoss!))).toBe(true);
  expect(r.test!.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(job.splits.test.length);
  expect(Number.isFinite(r.validation!.loss)).toBe(true);
  // Transfer learning also saves the out-of-distribution feature bank.
  const ood = r.graft.method === 'scratch' ? [] : ['ood-features.bin'];
  expect(Object.keys(r.artifacts).sort()).toEqual(['graft.json', 'model.json', ...ood, 'weights.bin']);
}

const aug = { copies: 1, rotationRange: 10, zoomRange: 0.1 };
const head = { epochs: 2, optimizer: 'adam' as const, learningRate: 0.01 };
const ft = { epochs: 2, optimizer: 'adam' as const, learningRate: 0.001 };

describe('with synchronous tensor reads turned off', () => {
  it('a synchronous read throws here', () => {
    const t = tf.tensor([1, 2]);
    try {
      expect(() => t.dataSync()).toThrow(/synchronous tensor reads are turned off/);
      expect(() => t.arraySync()).toThrow(/synchronous tensor reads are turned off/);
    } finally {
      t.dispose();
    }
  });

  it('trains from scratch, its steps shared with a replica thread, and the exported model predicts', async () => {
    const { result, checkpoints, logged } = await run(
      { method: 'scratch', inputSize: 48, augmentation: { ...aug, mode: 'end_to_end' }, featureExtraction: head, earlyStopping: { patience: 5 } },
      { threads: 2 },
    );
    expectTrained(result, ['training_head:1', 'training_head:2']);
    expect(checkpoints.map((c) => c.meta.epoch)).toEqual([1, 2]);
    expectReplicaUsed(logged);
    const clf = await loadClassifier(result.artifacts);
    try {
      const images = await Promise.all(job.splits.test.map((r) => job.readImage(r.key)));
      const probs = await clf.probabilities(images);
      expect(probs).toHaveLength(images.length);
      expect(probs.every((p) => Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-4)).toBe(true);
    } finally {
      clf.dispose();
    }
  }, 300_000);

  it('extracts features with cached augmentation (ONNX Runtime base) and trains the head', async () => {
    const { result, logged } = await run({ method: 'feature_extraction', augmentation: { ...aug, mode: 'cached' }, featureExtraction: head });
    expectTrained(result, ['training_head:1', 'training_head:2']);
    expect(logged.some((m) => /runs on ONNX Runtime/.test(m))).toBe(true);
  }, 300_000);

  it('trains the head with end-to-end augmentation through a TensorFlow.js base', async () => {
    const { result, logged } = await run({ method: 'feature_extraction', augmentation: { ...aug, mode: 'end_to_end' }, featureExtraction: head }, { frozen: 'tfjs' });
    expectTrained(result, ['training_head:1', 'training_head:2']);
    expect(logged.some((m) => /runs on TensorFlow.js \(requested\)/.test(m))).toBe(true);
  }, 300_000);

  it('fine-tunes on cached features with a replica thread, then resumes from its checkpoint', async () => {
    const config: TrainingConfigInput = { method: 'fine_tuning', augmentation: { ...aug, mode: 'cached' }, featureExtraction: head, fineTuning: ft };
    // The first attempt computes its steps with TensorFlow.js (shared with a replica thread), the resumed one with
    // ONNX Runtime's step graph (the default where it loads): both read nothing synchronously.
    const first = await run(config, { threads: 2 }, { trainEngine: 'tfjs' });
    expectTrained(first.result, ['training_head:1', 'training_head:2', 'fine_tuning:1', 'fine_tuning:2']);
    expectReplicaUsed(first.logged);
    const resumeFrom = first.checkpoints.find((c) => c.meta.phase === 'fine_tuning' && c.meta.epoch === 1)!;
    const again = await run(config, {}, { resume: resumeFrom, attempt: 2 });
    expect(again.logged).toContain('training steps run on ONNX Runtime');
    expect(again.result.history.map((h) => `${h.phase}:${h.epoch}:${h.attempt}`)).toEqual([
      'training_head:1:1',
      'training_head:2:1',
      'fine_tuning:1:1',
      'fine_tuning:2:2',
    ]);
  }, 300_000);

  it('fine-tunes with end-to-end augmentation', async () => {
    const { result } = await run({ method: 'fine_tuning', augmentation: { ...aug, mode: 'end_to_end' }, featureExtraction: { ...head, epochs: 1 }, fineTuning: { ...ft, epochs: 1 } });
    expectTrained(result, ['training_head:1', 'fine_tuning:1']);
  }, 300_000);
});

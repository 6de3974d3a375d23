// Part of phase "evaluate": what serving needs to tell images of none of the classes. The pooled features (the
// head's input) of up to OOD_BANK_MAX training images become the bank, and the threshold is the score above which
// about 5% of the validation images lie (see @graft/inference's ood.ts). Transfer learning only: a scratch
// convnet's features are learnt from the training images alone and say little about other subjects.
//
// Where extraction cached what the trained part takes (the pooled vectors of a frozen backbone, or the frozen lower
// part's outputs below a fine-tuned block) for every image, the features come from the cache: the unaugmented
// copy of each training image and the validation images, through the trained top block on ONNX Runtime where
// there is one. Otherwise the decoded images go through the whole trained network again.
import { normalizeRows, oodScore, OOD_BANK_FILE, OOD_NEIGHBOURS, thresholdFor, type OodManifest } from '@graft/inference';
import * as tf from '@tensorflow/tfjs';
import { throwIfAborted } from '../errors';
import { sizeOf, type ArrayForward, type FeatureStore } from '../features';
import { applyUpper } from '../fine-tune';
import { createFrozenModel } from '../frozen';
import { normalizePixels } from '../preprocess';
import type { Extracted } from './extract';
import type { Plan } from './plan';
import type { Sets } from './prepare';
import { readAndDispose, type Transfer } from './transfer';
import { INFERENCE_BATCH, type TrainContext } from './types';

/** Most training images in the bank (evenly spaced over the training split). */
export const OOD_BANK_MAX = 1000;

export interface OodStats {
  manifest: OodManifest;
  /** The bank file's bytes. */
  bank: Uint8Array;
  /** Share of the validation images the threshold flags. */
  validationFlagged: number;
}

/** The layer whose output is the head's input: the pooling layer, or the backbone's own (pooled) output. */
export function featureLayerName(t: Transfer): string {
  return t.head.pool?.name ?? t.backbone.outputs[0]!.sourceLayer.name;
}

/** At most n of items, evenly spaced (all of them where there are no more than n). */
function evenlySpaced<T>(items: readonly T[], n: number): T[] {
  const m = Math.min(n, items.length);
  return Array.from({ length: m }, (_, i) => items[Math.floor((i * items.length) / m)]!);
}

/** Pooled features of the trained network from what its trained part takes (after fine-tuning: the lower outputs). */
async function pooledFromLower(t: Transfer, lowers: Float32Array[], n: number): Promise<Float32Array> {
  return readAndDispose(tf.tidy(() => t.head.pooled(applyUpper(t.parts!.upper, lowers.map((a, i) => tf.tensor(a, [n, ...t.lowerShapes[i]!]))))));
}

/** Pooled features of the trained network (after fine-tuning, through the trained top block). */
function trainedFeatures(t: Transfer): ArrayForward {
  if (!t.parts) return t.headFeatures;
  return async (input, n) => [await pooledFromLower(t, await t.lowerOutputs(input, n), n)];
}

/** Unit-length features of decoded images, one row each. */
async function featuresOfImages(ctx: TrainContext, p: Plan, forward: ArrayForward, images: Uint8Array[], d: number): Promise<Float32Array> {
  const per = p.size * p.size * 3;
  const out = new Float32Array(images.length * d);
  for (let start = 0; start < images.length; start += INFERENCE_BATCH) {
    throwIfAborted(ctx.signal);
    const batch = images.slice(start, start + INFERENCE_BATCH);
    const buf = new Float32Array(batch.length * per);
    batch.forEach((img, j) => normalizePixels(img, p.preprocessing, buf.subarray(j * per, (j + 1) * per)));
    const [features] = await forward(buf, batch.length);
    out.set(features!, start * d);
  }
  return normalizeRows(out, d);
}

/** What computes pooled features from a store's samples (each sample's inputs laid out one after the other). */
type StoredForward = (inputs: Float32Array[], n: number) => Promise<Float32Array>;

/** Unit-length features of some samples of a store, one row each. */
async function featuresOfStored(ctx: TrainContext, store: FeatureStore, samples: number[], forward: StoredForward, d: number): Promise<Float32Array> {
  const out = new Float32Array(samples.length * d);
  for (let start = 0; start < samples.length; start += INFERENCE_BATCH) {
    throwIfAborted(ctx.signal);
    const idx = samples.slice(start, start + INFERENCE_BATCH);
    const inputs = store.shapes.map((shape, k) => {
      const per = sizeOf(shape);
      const buf = new Float32Array(idx.length * per);
      idx.forEach((s, j) => buf.set(store.samples[s]![k]!, j * per));
      return buf;
    });
    out.set(await forward(inputs, idx.length), start * d);
  }
  return normalizeRows(out, d);
}

/** The first sample of each group of a store: the image itself, before its augmented copies. */
function originals(store: FeatureStore): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  store.sampleGroups.forEach((g, i) => {
    if (!seen.has(g)) {
      seen.add(g);
      out.push(i);
    }
  });
  return out;
}

/**
 * Bank and validation features from the features extraction cached; null where it did not cache them (end-to-end
 * augmentation, a run resumed past the head, or validation images missing from the cache).
 */
async function cachedFeatures(ctx: TrainContext, t: Transfer, x: Extracted, d: number): Promise<{ bank: Float32Array; val: Float32Array } | null> {
  const [train, val] = t.parts ? [x.lowerTrain, x.lowerVal] : [x.headTrain, x.headVal];
  if (!train || !val || val.count !== x.sets.validation.images.length) return null;
  const picked = evenlySpaced(originals(train), OOD_BANK_MAX);
  if (!t.parts) {
    const identity: StoredForward = async (inputs) => inputs[0]!;
    return { bank: await featuresOfStored(ctx, train, picked, identity, d), val: await featuresOfStored(ctx, val, [...val.samples.keys()], identity, d) };
  }
  // The trained top block, on ONNX Runtime where it can run there (it holds the weights as they are now).
  const parts = t.parts;
  const upper = t.lowerShapes.length === 1 ? await createFrozenModel(parts.upper, { log: ctx.log, engine: ctx.opts.frozenEngine, what: 'trained top block' }) : null;
  try {
    const forward: StoredForward = async (inputs, n) => {
      if (!upper) return pooledFromLower(t, inputs, n);
      const [maps] = await upper.run(inputs[0]!, n, { transfer: true });
      return readAndDispose(tf.tidy(() => t.head.pooled(tf.tensor(maps!, [n, ...t.featureShape]))));
    };
    return { bank: await featuresOfStored(ctx, train, picked, forward, d), val: await featuresOfStored(ctx, val, [...val.samples.keys()], forward, d) };
  } finally {
    await upper?.dispose();
  }
}

/** The bank and threshold; null without validation images or with a flattened (unpooled) head input. */
export async function outOfDistributionStats(ctx: TrainContext, p: Plan, t: Transfer, x: Extracted): Promise<OodStats | null> {
  const d = t.pooledShape[0]!;
  const sets = x.sets;
  if (!sets.validation.images.length || sets.train.images.length < 2 || ctx.cfg.head.pooling === 'flatten') return null;
  const started = performance.now();
  let features = await cachedFeatures(ctx, t, x, d);
  const source = features ? 'cached features' : 'images';
  if (!features) {
    const forward = trainedFeatures(t);
    features = {
      bank: await featuresOfImages(ctx, p, forward, evenlySpaced(sets.train.images, OOD_BANK_MAX), d),
      val: await featuresOfImages(ctx, p, forward, sets.validation.images, d),
    };
  }
  const { bank, val } = features;
  const n = bank.length / d;
  const scores: number[] = [];
  for (let i = 0; i < sets.validation.images.length; i++) scores.push(oodScore(bank, d, val.subarray(i * d, (i + 1) * d)));
  const threshold = thresholdFor(scores);
  const validationFlagged = scores.filter((s) => s > threshold).length / scores.length;
  const seconds = +((performance.now() - started) / 1000).toFixed(2);
  ctx.log({ bank: n, threshold: +threshold.toFixed(4), validationFlagged, from: source, seconds }, 'out-of-distribution threshold set');
  return {
    manifest: { method: 'knn', neighbours: OOD_NEIGHBOURS, featureLayer: featureLayerName(t), featureSize: d, bankFile: OOD_BANK_FILE, bankSize: n, threshold },
    bank: new Uint8Array(bank.buffer, bank.byteOffset, bank.byteLength),
    validationFlagged,
  };
}

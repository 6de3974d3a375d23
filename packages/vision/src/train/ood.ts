// Part of phase "evaluate": what serving needs to tell images of none of the classes. The pooled features (the
// head's input) of up to OOD_BANK_MAX training images become the bank, and the threshold is the score above which
// about 5% of the validation images lie (see @graft/inference's ood.ts). Transfer learning only: a scratch
// convnet's features are learnt from the training images alone and say little about other subjects.
import { normalizeRows, oodScore, OOD_BANK_FILE, OOD_NEIGHBOURS, thresholdFor, type OodManifest } from '@graft/inference';
import * as tf from '@tensorflow/tfjs';
import { throwIfAborted } from '../errors';
import type { ArrayForward } from '../features';
import { applyUpper } from '../fine-tune';
import { normalizePixels } from '../preprocess';
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

/** Pooled features of the trained network (after fine-tuning, through the trained top block). */
function trainedFeatures(t: Transfer): ArrayForward {
  if (!t.parts) return t.headFeatures;
  const parts = t.parts;
  return async (input, n) => {
    const lowers = await t.lowerOutputs(input, n);
    return [await readAndDispose(tf.tidy(() => t.head.pooled(applyUpper(parts.upper, lowers.map((a, i) => tf.tensor(a, [n, ...t.lowerShapes[i]!]))))))];
  };
}

/** Unit-length features of decoded images, one row each. */
async function featuresOf(ctx: TrainContext, p: Plan, forward: ArrayForward, images: Uint8Array[], d: number): Promise<Float32Array> {
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

/** The bank and threshold; null without validation images or with a flattened (unpooled) head input. */
export async function outOfDistributionStats(ctx: TrainContext, p: Plan, t: Transfer, sets: Sets): Promise<OodStats | null> {
  const d = t.pooledShape[0]!;
  if (!sets.validation.images.length || sets.train.images.length < 2 || ctx.cfg.head.pooling === 'flatten') return null;
  const train = sets.train.images;
  const n = Math.min(OOD_BANK_MAX, train.length);
  const picked = Array.from({ length: n }, (_, i) => train[Math.floor((i * train.length) / n)]!);
  const forward = trainedFeatures(t);
  const bank = await featuresOf(ctx, p, forward, picked, d);
  const val = await featuresOf(ctx, p, forward, sets.validation.images, d);
  const scores: number[] = [];
  for (let i = 0; i < sets.validation.images.length; i++) scores.push(oodScore(bank, d, val.subarray(i * d, (i + 1) * d)));
  const threshold = thresholdFor(scores);
  const validationFlagged = scores.filter((s) => s > threshold).length / scores.length;
  ctx.log({ bank: n, threshold: +threshold.toFixed(4), validationFlagged }, 'out-of-distribution threshold set');
  return {
    manifest: { method: 'knn', neighbours: OOD_NEIGHBOURS, featureLayer: featureLayerName(t), featureSize: d, bankFile: OOD_BANK_FILE, bankSize: n, threshold },
    bank: new Uint8Array(bank.buffer, bank.byteOffset, bank.byteLength),
    validationFlagged,
  };
}

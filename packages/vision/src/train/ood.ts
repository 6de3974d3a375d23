// Part of phase "evaluate": what serving needs to tell images of none of the classes. The pooled features (the
// head's input) of up to OOD_BANK_MAX training images become the bank, and the threshold is the score above which
// about 5% of the validation images lie (see @graft/inference's ood.ts). Transfer learning only: a scratch
// convnet's features are learnt from the training images alone and say little about other subjects.
//
// The training images' features come from what extraction cached where it did (the unaugmented copy of each
// image, trained-features.ts), else from the decoded images through the whole trained network; the validation
// images' features are the ones evaluation computed.
import { normalizeRows, oodScore, OOD_BANK_FILE, OOD_NEIGHBOURS, thresholdFor, type OodManifest } from '@graft/inference';
import { throwIfAborted } from '../errors';
import { networkInput, type FeatureStore } from '../features';
import { spread } from '../split';
import type { Extracted } from './extract';
import type { Plan } from './plan';
import { trainedPartStores, type TrainedFeatures } from './trained-features';
import type { Transfer } from './transfer';
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

/** Pooled features of decoded images through the whole trained network. */
async function featuresOfImages(ctx: TrainContext, p: Plan, features: TrainedFeatures, images: Uint8Array[]): Promise<Float32Array> {
  const per = p.size * p.size * 3;
  const out = new Float32Array(images.length * features.size);
  for (let start = 0; start < images.length; start += INFERENCE_BATCH) {
    throwIfAborted(ctx.signal);
    const batch = images.slice(start, start + INFERENCE_BATCH);
    // Pixels where the frozen part takes them (its worker thread normalises them), else normalised here.
    const buf = features.pixels ? new Uint8Array(batch.length * per) : new Float32Array(batch.length * per);
    batch.forEach((img, j) => networkInput(p, img, null, buf.subarray(j * per, (j + 1) * per)));
    const [pooled] = await features.ofInputs(buf, batch.length);
    out.set(pooled!, start * features.size);
  }
  return out;
}

/** Pooled features of up to OOD_BANK_MAX training images: from the cache where extraction kept every image's. */
async function bankFeatures(ctx: TrainContext, p: Plan, t: Transfer, x: Extracted, features: TrainedFeatures): Promise<{ rows: Float32Array; from: string }> {
  const store = trainedPartStores(t, x).train;
  const cached = store ? originals(store) : [];
  if (store && cached.length === x.sets.train.images.length) {
    return { rows: await features.ofStored(store, spread(cached, OOD_BANK_MAX), ctx.signal), from: 'cached features' };
  }
  return { rows: await featuresOfImages(ctx, p, features, spread(x.sets.train.images, OOD_BANK_MAX)), from: 'images' };
}

/**
 * The bank and threshold; null without validation images or with a flattened (unpooled) head input.
 * `validation`: the validation images' pooled features (evaluation's), in any order.
 */
export async function outOfDistributionStats(
  ctx: TrainContext,
  p: Plan,
  t: Transfer,
  x: Extracted,
  features: TrainedFeatures,
  validation: Float32Array | null,
): Promise<OodStats | null> {
  const d = features.size;
  const sets = x.sets;
  if (!sets.validation.images.length || sets.train.images.length < 2 || ctx.cfg.head.pooling === 'flatten') return null;
  const started = performance.now();
  const { rows, from } = await bankFeatures(ctx, p, t, x, features);
  const bank = normalizeRows(rows, d);
  const val = normalizeRows(validation ? validation.slice() : await featuresOfImages(ctx, p, features, sets.validation.images), d);
  const n = bank.length / d;
  const scores: number[] = [];
  for (let i = 0; i < val.length / d; i++) scores.push(oodScore(bank, d, val.subarray(i * d, (i + 1) * d)));
  const threshold = thresholdFor(scores);
  const validationFlagged = scores.filter((s) => s > threshold).length / scores.length;
  const seconds = +((performance.now() - started) / 1000).toFixed(2);
  ctx.log({ bank: n, from, threshold: +threshold.toFixed(4), validationFlagged, seconds }, 'out-of-distribution threshold set');
  return {
    manifest: { method: 'knn', neighbours: OOD_NEIGHBOURS, featureLayer: featureLayerName(t), featureSize: d, bankFile: OOD_BANK_FILE, bankSize: n, threshold },
    bank: new Uint8Array(bank.buffer, bank.byteOffset, bank.byteLength),
    validationFlagged,
  };
}

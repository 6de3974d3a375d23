// Phase "extract": runs the frozen part once per image and caches what the trained parts take. With cached
// augmentation, every training image and `copies` augmented copies of it: pooled vectors for the head, the lower
// part's outputs for fine-tuning. Always the validation images (no augmentation). With end-to-end augmentation
// the training images go through the frozen part every epoch instead (head.ts, fine-tune.ts).
import { BYTES_PER_VALUE, extractFeatures, FeatureStore, ImageSource, type ExtractItem, type FrozenStage, type PendingImage, type Sampling, type StorePrecision } from '../features';
import { backendOnGpu } from '../backend';
import { deriveSeed } from '../random';
import type { Prepared, Sets } from './prepare';
import { extractionItems, type Plan } from './plan';
import { FINE_TUNING_SAMPLING, HEAD_SAMPLING, type RunResources } from './resources';
import type { Transfer } from './transfer';
import { INFERENCE_BATCH, type TrainContext } from './types';

export interface Extracted {
  sets: Sets;
  /** Cached head features of the training images; null with end-to-end augmentation or no head phase. */
  headTrain: FeatureStore | null;
  /** Cached lower-part outputs of the training images (fine-tuning with cached augmentation). */
  lowerTrain: FeatureStore | null;
  headVal: FeatureStore | null;
  lowerVal: FeatureStore | null;
  /**
   * Where the run refits (Plan.refit): the augmented copies of the validation images (not the images themselves,
   * which headVal and lowerVal hold), for the head and for fine-tuning; null otherwise.
   */
  headRefit: FeatureStore | null;
  lowerRefit: FeatureStore | null;
}

/** A store of features of the given shapes with this run's labels and seed. */
export function featureStore(
  ctx: TrainContext,
  shapes: number[][],
  batchSize: number,
  sampling: Sampling = 'all',
  precision: StorePrecision = 'float32',
): FeatureStore {
  return new FeatureStore(shapes, ctx.kind, ctx.numClasses, batchSize, ctx.cfg.seed, sampling, precision);
}

/**
 * The full maps below the fine-tuned block (what fine-tuning reads, one per training image and copy) are kept in
 * float16: they are most of a job's memory (249 KB a view at 288 in float32).
 */
const LOWER_PRECISION: StorePrecision = 'float16';

/** Bytes a cached map value below the fine-tuned block takes (the job admission's estimate reads it). */
export const LOWER_MAP_BYTES = BYTES_PER_VALUE[LOWER_PRECISION];

/**
 * Whether images are augmented and normalised on the TensorFlow.js backend: where it and the frozen base run on
 * a GPU, which resamples far faster than this thread (a few hundred 224 px images a second).
 */
function augmentOnBackend(t: Transfer): boolean {
  return t.base.engine === 'tfjs' && backendOnGpu();
}

/** With end-to-end augmentation: the training images, augmented anew every epoch, through the frozen stage. */
export function augmentedTrainSource(ctx: TrainContext, p: Plan, x: Extracted, frozen: FrozenStage, t: Transfer): ImageSource {
  return new ImageSource({
    ...x.sets.train,
    size: p.size,
    preprocessing: p.preprocessing,
    augmentation: p.augmentation,
    frozen,
    augmentOnBackend: augmentOnBackend(t),
    kind: ctx.kind,
    numClasses: ctx.numClasses,
    batchSize: ctx.cfg.batchSize,
    seed: ctx.cfg.seed,
  });
}

export async function extract(ctx: TrainContext, p: Plan, res: RunResources, t: Transfer, prepared: Prepared): Promise<Extracted> {
  const { cfg } = ctx;
  res.progress.phase('extracting');
  // The head's features: for the head phase, and for the refit's (also where a resumed run skips the head phase).
  const needHead = !p.skipHead || p.refit;
  const headTrain = needHead && p.cachedMode ? featureStore(ctx, [t.pooledShape], cfg.batchSize, HEAD_SAMPLING) : null;
  const lowerTrain = t.parts && p.cachedMode ? featureStore(ctx, t.lowerShapes, cfg.batchSize, FINE_TUNING_SAMPLING, LOWER_PRECISION) : null;
  const { train: trainItems, total: totalItems } = extractionItems(p);
  const started = performance.now();
  let count = 0;

  /**
   * Runs copies `first` to `last` of each image (0: the image itself; augmented copies drawn from `seed`) through
   * the frozen part into the stores given, `offset` items into the phase's progress; with `fp32`,
   * in fp32 where the frozen part runs in int8: the validation images, so that early stopping, the evaluation and the
   * predictions reported are those of the fp32 model exported (model.onnx), which the int8 check then compares with.
   */
  const run = async (
    images: PendingImage[],
    labels: number[],
    copies: { first: number; last: number; seed: number },
    lower: FeatureStore | null,
    head: FeatureStore | null,
    offset: number,
    fp32: boolean,
  ) => {
    const stores = [lower, head].filter((s): s is FeatureStore => s !== null);
    if (!stores.length) return;
    const items: ExtractItem[] = [];
    images.forEach((_, i) => {
      for (let c = copies.first; c <= copies.last; c++) items.push({ image: i, copy: c, label: labels[i]! });
    });
    count += await extractFeatures({
      images,
      items,
      size: p.size,
      preprocessing: p.preprocessing,
      augmentation: p.augmentation,
      seed: copies.seed,
      batchSize: INFERENCE_BATCH,
      stores,
      augmentOnBackend: augmentOnBackend(t),
      pixels: t.base.pixels,
      signal: ctx.signal,
      forward: async (input, n, given) => {
        const o = { fp32, giveBack: given?.giveBack };
        if (!t.parts) return t.headFeatures(input, n, o);
        const lowers = await t.lowerOutputs(input, n, o);
        const pooled = head ? await t.headFromLower(lowers, n, { fp32 }) : null;
        return [...(lower ? lowers : []), ...(pooled ? [pooled] : [])];
      },
      onProgress: (done) => res.progress.update('extracting', (offset + done) / totalItems),
    });
  };

  // The training images are taken as they decode (prepare.ts), so decoding overlaps with the frozen passes.
  if (p.cachedMode) await run(prepared.trainPending, p.splits.train.map((r) => r.label), { first: 0, last: p.copies, seed: cfg.seed }, lowerTrain, headTrain, 0, false);
  const sets = await prepared.sets();
  const hasVal = sets.validation.images.length > 0;
  const headVal = needHead && hasVal ? featureStore(ctx, [t.pooledShape], INFERENCE_BATCH) : null;
  const lowerVal = t.parts && hasVal ? featureStore(ctx, t.lowerShapes, INFERENCE_BATCH, 'all', LOWER_PRECISION) : null;
  await run(sets.validation.images, sets.validation.labels, { first: 0, last: 0, seed: cfg.seed }, lowerVal, headVal, trainItems, true);
  // The validation images' copies for the refit, as the training images' are made (through int8 where the frozen part
  // runs in int8), drawn from a seed of their own: image i of validation is not image i of train.
  const refitting = p.refit && hasVal && p.copies > 0;
  const headRefit = refitting && headTrain ? featureStore(ctx, [t.pooledShape], cfg.batchSize, HEAD_SAMPLING) : null;
  const lowerRefit = refitting && lowerTrain ? featureStore(ctx, t.lowerShapes, cfg.batchSize, FINE_TUNING_SAMPLING, LOWER_PRECISION) : null;
  const refitCopies = { first: 1, last: p.copies, seed: deriveSeed(cfg.seed, 'refit') };
  await run(sets.validation.images, sets.validation.labels, refitCopies, lowerRefit, headRefit, trainItems + sets.validation.images.length, false);
  const seconds = (performance.now() - started) / 1000;
  if (count) {
    ctx.log({ images: count, seconds: +seconds.toFixed(1), imagesPerSecond: +(count / seconds).toFixed(1), engine: t.base.engine, augmentedOn: augmentOnBackend(t) ? 'backend' : 'thread' }, 'features extracted');
  }
  return { sets, headTrain, lowerTrain, headVal, lowerVal, headRefit, lowerRefit };
}

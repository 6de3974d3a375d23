// Phase "evaluate": the trained model's metrics on the validation data (confusion matrix included) and on the
// test images. For transfer learning the validation images' cached features go through the trained part once
// (trained-features.ts: the trained top block on ONNX Runtime where it runs there), and the pooled features that
// come out serve the out-of-distribution bank too; the test images go through the frozen part once and then the
// trained part, as in training. A scratch model classifies the decoded images directly. After a refit
// (train/refit.ts) the validation metrics, the calibration fitted on them and the validation predictions are those
// of the model chosen on those images, which never trained on them; the test metrics are the refit model's.
import { applyTemperature, calibrationReport, fitTemperature } from '@graft/inference';
import * as tf from '@tensorflow/tfjs';
import { throwIfAborted } from '../errors';
import type { GraftManifest } from '../export';
import { argMax, classificationMetrics, toClassProbabilities, type TestMetrics } from '../evaluate';
import { extractFeatures, type FeatureStore } from '../features';
import { disposeBatch, readWeights, writeWeights, type BatchSource, type Forward } from '../fit';
import { normalizePixels, type Preprocessing } from '../preprocess';
import { featureStore } from './extract';
import type { Plan } from './plan';
import type { Sets } from './prepare';
import type { RunResources } from './resources';
import type { SavedWeights } from './refit';
import { classifyPooled, trainedFeatures, type TrainedFeatures } from './trained-features';
import { readAndDispose, type Network, type Transfer } from './transfer';
import { INFERENCE_BATCH, type ImagePrediction, type ImageSet, type TrainContext, type Trained } from './types';

export interface Evaluation {
  /** The validation images as the trained model classifies them: loss, accuracy, confusion matrix, per class. */
  validation: TestMetrics | null;
  test: TestMetrics | null;
  /** Temperature scaling fitted on the validation images (null without them). */
  calibration: GraftManifest['calibration'];
  predictions: { validation: ImagePrediction[] | null; test: ImagePrediction[] | null };
  /** The validation images' pooled features (the head's input), where the network has a head. */
  validationFeatures: Float32Array | null;
  /**
   * The exported model's class of each validation image, in predictions.validation's order: after a refit the refit
   * model's (predictions.validation holds the chosen model's), else the same classes as predictions.validation.
   */
  exportedValidationClasses: number[] | null;
}

export async function evaluate(
  ctx: TrainContext,
  p: Plan,
  res: RunResources,
  trained: Trained,
  sets: Sets,
  path: Network,
  features: {
    trained: TrainedFeatures;
    validation: FeatureStore | null;
    /** After a refit: the weights of the model chosen on the validation images, which the validation metrics are of. */
    chosen?: SavedWeights | null;
  } | null,
): Promise<Evaluation> {
  res.progress.phase('evaluating');
  const test = sets.test;
  let probabilities: Float32Array[] | null = null;
  if (test.images.length) {
    const progress = (share: number) => (done: number) => res.progress.update('evaluating', (share * done) / test.images.length);
    probabilities =
      'transfer' in path && features
        ? await transferProbabilities(ctx, p, path.transfer, features.trained, test, progress(0.9))
        : 'model' in path
          ? await predictProbabilities(path.model, test.images, p.size, p.preprocessing, ctx.numClasses, ctx.signal, progress(1))
          : null;
  }
  let validation: TestMetrics | null = null;
  let calibration: Evaluation['calibration'] = null;
  let v: { probabilities: Float32Array[]; labels: number[] } | null = null;
  let validationFeatures: Float32Array | null = null;
  // The exported model's probabilities of the validation images: v's, except after a refit.
  let exported: Float32Array[] | null = null;
  if ('transfer' in path && features?.validation) {
    // Through the trained part once: the pooled features serve the out-of-distribution bank too.
    const store = features.validation;
    validationFeatures = await features.trained.ofStored(store, store.indices(), ctx.signal);
    const probabilitiesOf = (out: Float32Array) => toClassProbabilities(out, store.count, ctx.numClasses);
    exported = probabilitiesOf(await classifyPooled(path.transfer, validationFeatures, features.trained.size, ctx.signal));
    const chosen = features.chosen ? probabilitiesOf(await chosenProbabilities(ctx, path.transfer, features.chosen, store)) : exported;
    v = { probabilities: chosen, labels: [...store.labels] };
  } else if (trained.validation) {
    v = await sourceProbabilities(trained.forward, trained.validation, ctx.numClasses, ctx.signal);
    exported = v.probabilities;
  }
  if (v) {
    const temperature = fitTemperature(v.probabilities, v.labels);
    calibration = { temperature, fittedOn: 'validation', images: v.labels.length };
    validation = { ...classificationMetrics(v.probabilities, v.labels, ctx.labels), calibration: calibrationReport(v.probabilities, v.labels, temperature) };
  }
  const temperature = calibration?.temperature ?? 1;
  const metrics = probabilities
    ? { ...classificationMetrics(probabilities, test.labels, ctx.labels), calibration: calibrationReport(probabilities, test.labels, temperature) }
    : null;
  const brief = (m: TestMetrics | null) =>
    m ? { loss: m.loss, accuracy: m.accuracy, ece: m.calibration?.ece, calibratedEce: m.calibration?.calibratedEce } : null;
  ctx.log({ validation: brief(validation), test: brief(metrics), temperature }, 'evaluated');
  const predictions = {
    validation: v ? perImage(sets.validation, v.probabilities, temperature) : null,
    test: probabilities ? perImage(test, probabilities, temperature) : null,
  };
  return { validation, test: metrics, calibration, predictions, validationFeatures, exportedValidationClasses: exported?.map(argMax) ?? null };
}

/**
 * The head's outputs for a store's samples through the model chosen on the validation images: its weights are put
 * back for the pass (its top block on ONNX Runtime as trainedFeatures makes it), then the refit's again.
 */
async function chosenProbabilities(ctx: TrainContext, t: Transfer, chosen: SavedWeights, store: FeatureStore): Promise<Float32Array> {
  const refitted = await readWeights(chosen.variables);
  writeWeights(chosen.variables, chosen.values);
  const f = await trainedFeatures(ctx, t);
  try {
    return await classifyPooled(t, await f.ofStored(store, store.indices(), ctx.signal), f.size, ctx.signal);
  } finally {
    await f.dispose();
    writeWeights(chosen.variables, refitted);
  }
}

/** Each image of a split with its calibrated probabilities (in the split's order); null if they do not line up. */
function perImage(set: ImageSet, probabilities: Float32Array[], temperature: number): ImagePrediction[] | null {
  if (probabilities.length !== set.keys.length) return null;
  return probabilities.map((raw, i) => {
    const p = Array.from(applyTemperature(raw, temperature));
    return { key: set.keys[i]!, label: set.labels[i]!, predicted: argMax(p), probabilities: p };
  });
}

/** Test images through the frozen part (once), then the trained part. */
async function transferProbabilities(
  ctx: TrainContext,
  p: Plan,
  t: Transfer,
  features: TrainedFeatures,
  test: Sets['test'],
  onProgress: (done: number) => void,
): Promise<Float32Array[]> {
  const store = featureStore(ctx, [[features.size]], INFERENCE_BATCH);
  await extractFeatures({
    images: test.images,
    items: test.images.map((_, i) => ({ image: i, copy: 0, label: test.labels[i]! })),
    size: p.size,
    preprocessing: p.preprocessing,
    augmentation: null,
    seed: ctx.cfg.seed,
    batchSize: INFERENCE_BATCH,
    stores: [store],
    signal: ctx.signal,
    pixels: t.base.pixels,
    forward: features.ofInputs,
    onProgress,
  });
  const [pooled] = store.gather(store.indices());
  return toClassProbabilities(await classifyPooled(t, pooled!, features.size, ctx.signal), store.count, ctx.numClasses);
}

/** Class probabilities of forward over every sample of a source (in order), in inference mode, and their labels. */
async function sourceProbabilities(
  forward: Forward,
  source: BatchSource,
  numClasses: number,
  signal?: AbortSignal,
): Promise<{ probabilities: Float32Array[]; labels: number[] }> {
  const probabilities: Float32Array[] = [];
  const labels: number[] = [];
  for await (const batch of source.batches(0, false, signal)) {
    try {
      const [data, ys] = await Promise.all([readAndDispose(tf.tidy(() => forward(batch.xs, false))), batch.ys.data()]);
      probabilities.push(...toClassProbabilities(data, batch.size, numClasses));
      // Labels are [n, 1] of 0/1 for two classes, one-hot [n, k] otherwise.
      const width = ys.length / batch.size;
      for (let i = 0; i < batch.size; i++) {
        if (width === 1) labels.push(ys[i]! > 0.5 ? 1 : 0);
        else {
          let best = 0;
          for (let k = 1; k < width; k++) if (ys[i * width + k]! > ys[i * width + best]!) best = k;
          labels.push(best);
        }
      }
    } finally {
      disposeBatch(batch);
    }
  }
  return { probabilities, labels };
}

/** Class probabilities of decoded images (size x size x 3 RGB) through a classifier, in batches. */
export async function predictProbabilities(
  model: tf.LayersModel,
  images: Uint8Array[],
  size: number,
  preprocessing: Preprocessing,
  numClasses: number,
  signal?: AbortSignal,
  onProgress?: (done: number) => void,
): Promise<Float32Array[]> {
  const per = size * size * 3;
  const result: Float32Array[] = [];
  for (let start = 0; start < images.length; start += INFERENCE_BATCH) {
    throwIfAborted(signal);
    const batch = images.slice(start, start + INFERENCE_BATCH);
    const buf = new Float32Array(batch.length * per);
    batch.forEach((img, j) => normalizePixels(img, preprocessing, buf.subarray(j * per, (j + 1) * per)));
    const data = await readAndDispose(tf.tidy(() => model.predict(tf.tensor4d(buf, [batch.length, size, size, 3])) as tf.Tensor));
    result.push(...toClassProbabilities(data, batch.length, numClasses));
    onProgress?.(start + batch.length);
    await new Promise<void>((r) => setImmediate(r));
  }
  return result;
}

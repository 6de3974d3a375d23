// Out-of-sample class probabilities of every training image by k-fold cross-validation over cached feature
// vectors: the images are dealt into k folds (stratified by label, seeded), and each fold is scored by a model
// trained on the other k-1. The model is multinomial logistic regression (softmax over the classes, L2 penalty)
// on standardised vectors, trained full-batch with Adam: a second or two a fold for thousands of
// vectors, so scoring every image costs little next to training. The models are fitted on the first sample of
// each image (the image itself); its augmented copies (the other samples of its group) always fall in the same
// fold, and the image's probabilities are the mean over all its samples. Other vectors (a validation split) get
// the mean of the k models.
import * as tf from '@tensorflow/tfjs';
import { throwIfAborted } from './errors';
import { createRng, deriveSeed, shuffleInPlace } from './random';

export interface CrossValidationSettings {
  folds: number;
  /** Full-batch optimizer steps per fold. */
  steps: number;
  learningRate: number;
  /** Weight of the sum of squared weights in the loss (the cross-entropy is a mean over the samples). */
  l2: number;
}

/**
 * Chosen on Dogs vs Cats features (bench/label-issues.ts): a strong penalty ranks flipped labels best, and with it
 * 60 steps are enough; fitting on the augmented copies too costs six times as much and finds no more.
 */
export const CROSS_VALIDATION: CrossValidationSettings = { folds: 5, steps: 60, learningRate: 0.01, l2: 0.2 };

export interface CrossValidationInput {
  /** One vector per sample, all of one length. */
  vectors: readonly Float32Array[];
  /** The label of each sample. */
  labels: readonly number[];
  /** The image each sample is of (an image and its augmented copies share one). */
  groups: readonly number[];
  numClasses: number;
  seed: number;
  /** Vectors scored by every fold's model (averaged), not trained on. */
  others?: readonly Float32Array[];
  settings?: Partial<CrossValidationSettings>;
  signal?: AbortSignal;
}

export interface CrossValidated {
  /** The groups in order of first appearance, each with its out-of-fold probabilities and label. */
  groups: number[];
  probabilities: Float32Array[];
  labels: number[];
  /** Probabilities of `others`, the mean over the folds' models. */
  others: Float32Array[];
  folds: number;
}

/** Fold of each group: groups shuffled within each label, then dealt round the folds. */
export function assignFolds(groups: readonly number[], labels: readonly number[], folds: number, seed: number): Map<number, number> {
  const byLabel = new Map<number, Set<number>>();
  groups.forEach((g, i) => {
    const y = labels[i]!;
    const set = byLabel.get(y) ?? new Set<number>();
    set.add(g);
    byLabel.set(y, set);
  });
  const fold = new Map<number, number>();
  let next = 0;
  for (const y of [...byLabel.keys()].sort((a, b) => a - b)) {
    const members = [...byLabel.get(y)!].sort((a, b) => a - b);
    shuffleInPlace(members, createRng(deriveSeed(seed, 'folds', y)));
    for (const g of members) if (!fold.has(g)) fold.set(g, next++ % folds);
  }
  return fold;
}

export async function crossValidate(o: CrossValidationInput): Promise<CrossValidated> {
  const s = { ...CROSS_VALIDATION, ...o.settings };
  const n = o.vectors.length;
  const d = n ? o.vectors[0]!.length : 0;
  const others = o.others ?? [];
  const order: number[] = [];
  const seen = new Map<number, number>();
  const first = o.groups.map((g) => {
    if (seen.has(g)) return false;
    seen.set(g, order.length);
    order.push(g);
    return true;
  });
  const groupLabels = order.map(() => 0);
  o.groups.forEach((g, i) => (groupLabels[seen.get(g)!] = o.labels[i]!));
  const folds = Math.max(2, Math.min(s.folds, order.length));
  const foldOf = assignFolds(o.groups, o.labels, folds, o.seed);

  const { x, xOthers } = standardised(o.vectors, others, d);
  const k = o.numClasses;
  const sums = order.map(() => new Float32Array(k));
  const counts = new Array<number>(order.length).fill(0);
  const otherSums = others.map(() => new Float32Array(k));
  try {
    for (let f = 0; f < folds; f++) {
      const fitIdx: number[] = [];
      const scoreIdx: number[] = [];
      o.groups.forEach((g, i) => {
        if (foldOf.get(g) === f) scoreIdx.push(i);
        else if (first[i]) fitIdx.push(i);
      });
      if (!scoreIdx.length || !fitIdx.length) continue;
      const model = await fitSoftmax(x, fitIdx, o.labels, k, s, deriveSeed(o.seed, 'fold', f), o.signal);
      try {
        const p = await model.predict(x, scoreIdx);
        scoreIdx.forEach((i, r) => {
          const at = seen.get(o.groups[i]!)!;
          for (let j = 0; j < k; j++) sums[at]![j]! += p[r * k + j]!;
          counts[at]! += 1;
        });
        if (xOthers) {
          const q = await model.predict(xOthers, null);
          otherSums.forEach((sum, r) => {
            for (let j = 0; j < k; j++) sum[j]! += q[r * k + j]! / folds;
          });
        }
      } finally {
        model.dispose();
      }
    }
  } finally {
    tf.dispose([x, xOthers].filter((t): t is tf.Tensor2D => t !== null));
  }
  return {
    groups: order,
    probabilities: sums.map((sum, i) => sum.map((v) => v / Math.max(1, counts[i]!))),
    labels: groupLabels,
    others: otherSums,
    folds,
  };
}

/** The vectors as tensors, each dimension centred and scaled by the training vectors' mean and deviation. */
function standardised(vectors: readonly Float32Array[], others: readonly Float32Array[], d: number): { x: tf.Tensor2D; xOthers: tf.Tensor2D | null } {
  const mean = new Float64Array(d);
  const sq = new Float64Array(d);
  for (const v of vectors) for (let j = 0; j < d; j++) mean[j] += v[j]!;
  for (let j = 0; j < d; j++) mean[j] /= Math.max(1, vectors.length);
  for (const v of vectors) for (let j = 0; j < d; j++) sq[j] += (v[j]! - mean[j]!) ** 2;
  const scale = Float32Array.from(sq, (s) => 1 / (Math.sqrt(s / Math.max(1, vectors.length)) + 1e-6));
  const pack = (vs: readonly Float32Array[]) => {
    const buf = new Float32Array(vs.length * d);
    vs.forEach((v, i) => {
      for (let j = 0; j < d; j++) buf[i * d + j] = (v[j]! - mean[j]!) * scale[j]!;
    });
    return tf.tensor2d(buf, [vs.length, d]);
  };
  return { x: pack(vectors), xOthers: others.length ? pack(others) : null };
}

interface SoftmaxModel {
  /** Probabilities of rows `rows` of x (all rows where null), row after row. */
  predict(x: tf.Tensor2D, rows: number[] | null): Promise<Float32Array>;
  dispose(): void;
}

async function fitSoftmax(
  x: tf.Tensor2D,
  rows: number[],
  labels: readonly number[],
  k: number,
  s: CrossValidationSettings,
  seed: number,
  signal?: AbortSignal,
): Promise<SoftmaxModel> {
  const d = x.shape[1];
  // Variables outlive tidy(); the tensors they were made from do not.
  const w = tf.tidy(() => tf.variable(tf.randomNormal([d, k], 0, 0.01, 'float32', seed % 2147483647)));
  const b = tf.tidy(() => tf.variable(tf.zeros([k])));
  const optimizer = tf.train.adam(s.learningRate);
  const xs = tf.tidy(() => tf.gather(x, tf.tensor1d(rows, 'int32')));
  const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(rows.map((i) => labels[i]!), 'int32'), k).toFloat());
  try {
    for (let step = 0; step < s.steps; step++) {
      const cost = optimizer.minimize(
        () => tf.add(tf.losses.softmaxCrossEntropy(ys, tf.add(tf.matMul(xs, w), b)), tf.mul(s.l2, tf.sum(tf.square(w)))) as tf.Scalar,
        false,
        [w, b],
      );
      cost?.dispose();
      if (step % 25 === 24) {
        throwIfAborted(signal);
        // Let timers and I/O run between steps.
        await new Promise<void>((r) => setImmediate(r));
      }
    }
  } catch (err) {
    tf.dispose([w, b]);
    throw err;
  } finally {
    tf.dispose([xs, ys]);
    optimizer.dispose();
  }
  return {
    async predict(all, which) {
      const t = tf.tidy(() => tf.softmax(tf.add(tf.matMul(which ? tf.gather(all, tf.tensor1d(which, 'int32')) : all, w), b)));
      try {
        return (await t.data()) as Float32Array;
      } finally {
        t.dispose();
      }
    },
    dispose: () => tf.dispose([w, b]),
  };
}

// The training loop shared by every phase: mini-batch steps with an optimizer over an explicit list of
// variables, validation after each epoch, early stopping on validation loss with the best weights restored, a
// callback after every epoch (for checkpoints), and an AbortSignal checked before every batch.
import * as tf from '@tensorflow/tfjs';
import type { HistoryRow } from '@graft/contract';
import { throwIfAborted, VisionError } from './errors';
import type { GradientReplicas, Share } from './replicas';
import type { GradientEngine } from './step-engine';

/** 'binary': one sigmoid unit, labels 0/1; 'categorical': softmax over k classes, one-hot labels. */
export type LossKind = 'binary' | 'categorical';

export interface Batch {
  /** The inputs of the forward function (usually one tensor). */
  xs: tf.Tensor[];
  /** Labels: [n, 1] of 0/1 ('binary') or one-hot [n, k] ('categorical'). */
  ys: tf.Tensor2D;
  size: number;
  /** The same inputs and labels as arrays, where the source had them (saves reading the tensors back). */
  host?: { xs: Float32Array[]; ys: Float32Array };
}

/** Something that yields batches; `shuffle` draws a new order per epoch. */
export interface BatchSource {
  readonly size: number;
  batches(epoch: number, shuffle: boolean, signal?: AbortSignal): AsyncIterable<Batch>;
}

export function disposeBatch(b: Batch): void {
  tf.dispose(b.xs);
  b.ys.dispose();
}

/** Labels as the loss kind wants them, as an array ([n, 1] or one-hot [n, k], row after row). */
export function labelArray(labels: ArrayLike<number>, kind: LossKind, numClasses: number): Float32Array {
  const n = labels.length;
  if (kind === 'binary') return Float32Array.from(labels);
  const onehot = new Float32Array(n * numClasses);
  for (let i = 0; i < n; i++) onehot[i * numClasses + labels[i]!] = 1;
  return onehot;
}

/** Labels as the loss kind wants them. */
export function labelTensor(labels: ArrayLike<number>, kind: LossKind, numClasses: number): tf.Tensor2D {
  const n = labels.length;
  return tf.tensor2d(labelArray(labels, kind, numClasses), [n, kind === 'binary' ? 1 : numClasses]);
}

const EPSILON = 1e-7;

/** Mean cross-entropy of probabilities, clipped like Keras. */
export function crossEntropy(kind: LossKind, yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const p = tf.clipByValue(yPred, EPSILON, 1 - EPSILON);
    if (kind === 'binary') {
      const l = tf.add(tf.mul(yTrue, tf.log(p)), tf.mul(tf.sub(1, yTrue), tf.log(tf.sub(1, p))));
      return tf.neg(tf.mean(l)) as tf.Scalar;
    }
    return tf.neg(tf.mean(tf.sum(tf.mul(yTrue, tf.log(p)), -1))) as tf.Scalar;
  });
}

/** The predicted class index of each row of probabilities. */
export function predictedClass(kind: LossKind, yPred: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() =>
    kind === 'binary' ? (tf.cast(tf.greater(tf.reshape(yPred, [-1]), 0.5), 'int32') as tf.Tensor1D) : (tf.argMax(yPred, -1) as tf.Tensor1D),
  );
}

function trueClass(kind: LossKind, yTrue: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => (kind === 'binary' ? tf.cast(tf.reshape(yTrue, [-1]), 'int32') : tf.argMax(yTrue, -1)) as tf.Tensor1D);
}

/** How many rows are classified right. */
export function correctCount(kind: LossKind, yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.cast(tf.equal(predictedClass(kind, yPred), trueClass(kind, yTrue)), 'float32')) as tf.Scalar);
}

export type Forward = (xs: tf.Tensor[], training: boolean) => tf.Tensor;

/**
 * Loss and accuracy of forward over a source, in inference mode; with `engine`, computed by it at the weights
 * of `variables` (step-engine.ts).
 */
export async function evaluateSource(
  forward: Forward,
  source: BatchSource,
  kind: LossKind,
  signal?: AbortSignal,
  engine?: { gradients: GradientEngine; variables: tf.Variable[] },
): Promise<{ loss: number; accuracy: number }> {
  let lossSum = 0;
  let correct = 0;
  let n = 0;
  const weights = engine ? await readWeights(engine.variables) : null;
  for await (const batch of source.batches(0, false, signal)) {
    try {
      throwIfAborted(signal);
      if (engine) {
        const x = batch.host?.xs[0] ?? ((await batch.xs[0]!.data()) as Float32Array);
        const y = batch.host?.ys ?? ((await batch.ys.data()) as Float32Array);
        const r = await engine.gradients.evaluate(x, y, batch.size, weights!);
        lossSum += r.loss * batch.size;
        correct += r.correct;
        n += batch.size;
        continue;
      }
      const [l, c] = tf.tidy(() => {
        const p = forward(batch.xs, false);
        return [crossEntropy(kind, batch.ys, p), correctCount(kind, batch.ys, p)];
      });
      try {
        const [lv, cv] = await Promise.all([l.data(), c.data()]);
        lossSum += lv[0]! * batch.size;
        correct += cv[0]!;
      } finally {
        tf.dispose([l, c]);
      }
      n += batch.size;
    } finally {
      disposeBatch(batch);
    }
  }
  return { loss: n ? lossSum / n : NaN, accuracy: n ? correct / n : NaN };
}

export type { HistoryRow };

/** Where a phase stands after its last finished epoch; JSON apart from `best`. */
export interface PhaseState {
  /** Epochs finished. */
  epoch: number;
  bestValLoss: number | null;
  /** 1-based epoch of bestValLoss, 0 when none. */
  bestEpoch: number;
  /** Epochs since the best one. */
  wait: number;
  /** Early stopping ended the phase. */
  stopped: boolean;
  /** Weights at bestValLoss, in the order of the variables trained. */
  best: Float32Array[] | null;
}

export function newPhaseState(): PhaseState {
  return { epoch: 0, bestValLoss: null, bestEpoch: 0, wait: 0, stopped: false, best: null };
}

export function phaseDone(state: PhaseState, epochs: number): boolean {
  return state.stopped || state.epoch >= epochs;
}

/** The values of variables (or tensors), copied out. */
export function readWeights(vars: (tf.LayerVariable | tf.Tensor)[]): Promise<Float32Array[]> {
  return Promise.all(vars.map(async (v) => Float32Array.from((await (v instanceof tf.Tensor ? v : v.read()).data()) as Float32Array)));
}

/** The value of a scalar tensor. */
export async function readScalar(t: tf.Tensor): Promise<number> {
  return (await t.data())[0]!;
}

export function writeWeights(vars: tf.LayerVariable[], values: Float32Array[]): void {
  if (values.length !== vars.length) throw new Error(`expected ${vars.length} weight arrays, got ${values.length}`);
  vars.forEach((v, i) => {
    const size = v.shape.reduce((a: number, b) => a * (b ?? 1), 1);
    if (values[i]!.length !== size) throw new Error(`weight ${v.name}: expected ${size} values, got ${values[i]!.length}`);
    const t = tf.tensor(values[i]!, v.shape as number[]);
    v.write(t);
    t.dispose();
  });
}

export interface FitOptions {
  phase: HistoryRow['phase'];
  attempt: number;
  epochs: number;
  forward: Forward;
  /** The variables trained, in a fixed order. */
  variables: tf.LayerVariable[];
  /** Extra loss terms (weight regularizers). */
  extraLoss?: () => tf.Scalar | null;
  optimizer: tf.Optimizer;
  loss: LossKind;
  train: BatchSource;
  validation: BatchSource | null;
  /** Early-stopping patience in epochs; null: no early stopping. */
  patience: number | null;
  /** Mutated as epochs finish (restored from a checkpoint to resume). */
  state: PhaseState;
  /** Rows are appended as epochs finish. */
  history: HistoryRow[];
  signal?: AbortSignal;
  /** Worker-thread replicas that compute the gradients of shares of each batch (see replicas.ts). */
  replicas?: GradientReplicas | null;
  /** Computes each step's loss and gradients instead of TensorFlow.js (step-engine.ts); one-input forwards only. */
  gradients?: GradientEngine | null;
  /** Called when a replica fails; training goes on in this thread. */
  onReplicaFailure?(): void;
  onBatch?(epoch: number, fraction: number): void;
  onEpoch?(row: HistoryRow, state: PhaseState): Promise<void> | void;
}

function rethrowMissingKernel(err: unknown): never {
  const m = /Kernel '(\w+)' not registered for backend '(\w+)'/.exec((err as Error)?.message ?? '');
  if (m) {
    throw new VisionError(
      'TRAINING_KERNEL_MISSING',
      `training these layers needs the '${m[1]}' kernel, which the '${m[2]}' backend does not have; ` +
        `use a backend that has it (GRAFT_TF_BACKEND=cpu) or train only the head (method feature_extraction)`,
    );
  }
  throw err;
}

/** Rows [start, start + count) of a tensor, as an array. */
async function rows(t: tf.Tensor, start: number, count: number): Promise<Float32Array> {
  const per = t.size / t.shape[0]!;
  return ((await t.data()) as Float32Array).slice(start * per, (start + count) * per);
}

/**
 * One optimizer step with the batch split in shares: the replicas compute the gradients of theirs while this
 * thread computes those of the first share; the gradients are averaged (weighted by share size) and applied
 * here. Returns the summed loss and the right answers; null, with nothing applied, where a replica failed.
 */
async function parallelStep(o: FitOptions, vars: tf.Variable[], batch: Batch): Promise<{ lossSum: number; correct: number } | null> {
  const replicas = o.replicas!;
  const n = batch.size;
  const parts = Math.min(n, replicas.count + 1);
  const sizes = Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
  const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
  const shares: Share[] = await Promise.all(
    sizes.slice(1).map(async (m, k) => ({
      xs: await Promise.all(batch.xs.map((x) => rows(x, starts[k + 1]!, m))),
      xShapes: batch.xs.map((x) => [m, ...x.shape.slice(1)]),
      ys: await rows(batch.ys, starts[k + 1]!, m),
      yShape: [m, ...batch.ys.shape.slice(1)],
    })),
  );
  const weights = await readWeights(vars);
  const remote = replicas.compute(weights, shares);
  remote.catch(() => {});
  const mine = sizes[0]!;
  let correctT: tf.Scalar | null = null;
  let ceT: tf.Scalar | null = null;
  let extraValue = 0;
  const { value, grads } = (() => {
    try {
      return tf.variableGrads(() => {
        const xs = batch.xs.map((x) => tf.slice(x, 0, mine));
        const ys = tf.slice(batch.ys, 0, mine);
        const p = o.forward(xs, true);
        correctT = tf.keep(correctCount(o.loss, ys, p));
        const ce = crossEntropy(o.loss, ys, p);
        ceT = tf.keep(ce.clone());
        const scaled = tf.mul(ce, mine / n) as tf.Scalar;
        const extra = o.extraLoss?.();
        return extra ? (tf.add(scaled, extra) as tf.Scalar) : scaled;
      }, vars);
    } catch (err) {
      rethrowMissingKernel(err);
    }
  })();
  let results: Awaited<typeof remote>;
  try {
    results = await remote;
  } catch {
    tf.dispose([value, ...Object.values(grads), correctT as tf.Scalar | null, ceT as tf.Scalar | null].filter((t): t is tf.Tensor => t != null));
    return null;
  }
  try {
    const ce = await readScalar((ceT as tf.Scalar | null)!);
    extraValue = (await readScalar(value)) - (ce * mine) / n;
    const combined: tf.NamedTensorMap = {};
    tf.tidy(() => {
      vars.forEach((v, i) => {
        let g: tf.Tensor = grads[v.name]!;
        results.forEach((r, k) => {
          g = tf.add(g, tf.mul(tf.tensor(r.grads[i]!, v.shape), sizes[k + 1]! / n));
        });
        combined[v.name] = tf.keep(g);
      });
    });
    o.optimizer.applyGradients(combined);
    tf.dispose(Object.values(combined));
    const lossSum = ce * mine + results.reduce((a, r, k) => a + r.loss * sizes[k + 1]!, 0) + extraValue * n;
    const correct = (await readScalar((correctT as tf.Scalar | null)!)) + results.reduce((a, r) => a + r.correct, 0);
    return { lossSum, correct };
  } finally {
    tf.dispose([value, ...Object.values(grads), correctT as tf.Scalar | null, ceT as tf.Scalar | null].filter((t): t is tf.Tensor => t != null));
  }
}

/**
 * One optimizer step by o.gradients: the new weights from it where it applies the optimizer's update, else its
 * gradients applied by the optimizer here.
 */
async function engineStep(o: FitOptions, vars: tf.Variable[], batch: Batch): Promise<{ lossSum: number; correct: number }> {
  const x = batch.host?.xs[0] ?? ((await batch.xs[0]!.data()) as Float32Array);
  const y = batch.host?.ys ?? ((await batch.ys.data()) as Float32Array);
  const engine = o.gradients!;
  if (engine.optimizer && engine.optimizer !== o.optimizer) throw new Error('the training engine applies the update of another optimizer');
  const r = await engine.compute(x, y, batch.size, await readWeights(vars));
  if (engine.optimizer) {
    writeWeights(o.variables, r.weights);
    return { lossSum: r.loss * batch.size, correct: r.correct };
  }
  tf.tidy(() => {
    const named: tf.NamedTensorMap = {};
    vars.forEach((v, i) => {
      named[v.name] = tf.tensor(r.grads[i]!, v.shape);
    });
    o.optimizer.applyGradients(named);
  });
  return { lossSum: r.loss * batch.size, correct: r.correct };
}

/** Trains until the epochs are done or early stopping ends the phase; then restores the best weights. */
export async function fit(o: FitOptions): Promise<void> {
  const vars = o.variables.map((v) => v.read() as tf.Variable);
  const s = o.state;
  let replicas = o.replicas ?? null;
  while (!phaseDone(s, o.epochs)) {
    const started = performance.now();
    const epoch = s.epoch;
    let lossSum = 0;
    let correct = 0;
    let n = 0;
    for await (const batch of o.train.batches(epoch, true, o.signal)) {
      try {
        throwIfAborted(o.signal);
        let parallel = replicas && batch.size >= 2 ? await parallelStep({ ...o, replicas }, vars, batch) : null;
        if (replicas && batch.size >= 2 && !parallel) {
          // A replica failed: this step and the rest of training run on this thread.
          o.onReplicaFailure?.();
          replicas = null;
          parallel = null;
        }
        const viaEngine = !parallel && o.gradients ? await engineStep(o, vars, batch) : null;
        if (parallel || viaEngine) {
          lossSum += (parallel ?? viaEngine)!.lossSum;
          correct += (parallel ?? viaEngine)!.correct;
        } else {
          let correctT: tf.Scalar | null = null;
          let cost: tf.Scalar | null;
          try {
            cost = o.optimizer.minimize(
              () => {
                const p = o.forward(batch.xs, true);
                correctT = tf.keep(correctCount(o.loss, batch.ys, p));
                const l = crossEntropy(o.loss, batch.ys, p);
                const extra = o.extraLoss?.();
                return extra ? (tf.add(l, extra) as tf.Scalar) : l;
              },
              true,
              vars,
            );
          } catch (err) {
            rethrowMissingKernel(err);
          }
          try {
            lossSum += (await readScalar(cost!)) * batch.size;
            const c = correctT as tf.Scalar | null;
            correct += c ? await readScalar(c) : 0;
          } finally {
            tf.dispose([cost!, correctT as tf.Scalar | null].filter((t): t is tf.Scalar => t != null));
          }
        }
        n += batch.size;
      } finally {
        disposeBatch(batch);
      }
      o.onBatch?.(epoch, n / Math.max(1, o.train.size));
      // Let timers, I/O and abort events run between batches.
      await new Promise<void>((r) => setImmediate(r));
    }
    const engine = o.gradients ? { gradients: o.gradients, variables: vars } : undefined;
    const val = o.validation ? await evaluateSource(o.forward, o.validation, o.loss, o.signal, engine) : null;
    const row: HistoryRow = {
      phase: o.phase,
      epoch: epoch + 1,
      attempt: o.attempt,
      loss: n ? lossSum / n : NaN,
      accuracy: n ? correct / n : NaN,
      valLoss: val ? val.loss : null,
      valAccuracy: val ? val.accuracy : null,
      seconds: (performance.now() - started) / 1000,
    };
    o.history.push(row);
    s.epoch = epoch + 1;
    if (val && Number.isFinite(val.loss)) {
      if (s.bestValLoss === null || val.loss < s.bestValLoss) {
        s.bestValLoss = val.loss;
        s.bestEpoch = epoch + 1;
        s.wait = 0;
        s.best = await readWeights(o.variables);
      } else {
        s.wait += 1;
        if (o.patience !== null && s.wait >= o.patience) s.stopped = true;
      }
    }
    await o.onEpoch?.(row, s);
  }
  if (s.best) writeWeights(o.variables, s.best);
}

// Training steps on ONNX Runtime (step-graph.ts, step-engine.ts) against TensorFlow.js's own gradients on the cpu
// backend: a MobileNet-style top block (depthwise 3x3, frozen batch norm, ReLU6, pointwise 1x1) with the head,
// and the head alone, for two classes (sigmoid) and three (softmax); a few steps of fit() with the engine.
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, correctCount, fit, newPhaseState, readWeights, writeWeights, type LossKind } from '@graft/vision/fit';
import { FeatureStore } from '@graft/vision/features';
import { Head } from '@graft/vision/head';
import { createStepEngine } from '@graft/vision/step-engine';

/** Deterministic uniform values in [lo, hi). */
function values(size: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: size }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return lo + ((s >>> 0) / 4294967296) * (hi - lo);
  });
}

const SHAPE = [5, 5, 8];
const N = 6;

/** A top block as MobileNet v1's (its kernels drawn from fixed seeds), with batch-norm statistics that are not the identity. */
function topBlock(): tf.LayersModel {
  const input = tf.input({ shape: SHAPE });
  let y = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, name: 'dw', depthwiseInitializer: tf.initializers.glorotUniform({ seed: 1 }) }).apply(input) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ name: 'dw_bn' }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.reLU({ maxValue: 6, name: 'dw_relu' }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.conv2d({ filters: 12, kernelSize: 1, useBias: false, name: 'pw', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ name: 'pw_bn' }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.reLU({ maxValue: 6, name: 'pw_relu' }).apply(y) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: y });
  let seed = 10;
  for (const l of model.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    const [gamma, beta, mean, variance] = l.getWeights();
    l.setWeights([
      tf.tensor(values(gamma!.size, seed++, 0.5, 2)),
      tf.tensor(values(beta!.size, seed++, -0.5, 1)),
      tf.tensor(values(mean!.size, seed++, -0.3, 0.3)),
      tf.tensor(values(variance!.size, seed++, 0.5, 1.5)),
    ]);
  }
  return model;
}

function labels(kind: LossKind, k: number): tf.Tensor2D {
  if (kind === 'binary') return tf.tensor2d(Float32Array.from({ length: N }, (_, i) => i % 2), [N, 1]);
  return tf.oneHot(tf.tensor1d(Array.from({ length: N }, (_, i) => i % k), 'int32'), k).toFloat() as tf.Tensor2D;
}

/** TensorFlow.js's loss, right answers and gradients, and the engine's, for the same batch and weights. */
async function compare(kind: LossKind, withBlock: boolean, units: number, blockedLayout = true) {
  const k = kind === 'binary' ? 2 : 3;
  const block = withBlock ? topBlock() : null;
  const featureShape = withBlock ? [5, 5, 12] : [12];
  const head = new Head(featureShape, k, { pooling: 'avg', units, dropout: 0 }, 3);
  const trained = block ? block.layers.filter((l) => l.getClassName() !== 'BatchNormalization') : [];
  const variables = [...trained.flatMap((l) => l.trainableWeights), ...head.trainableWeights];
  const inputShape = withBlock ? SHAPE : [12];
  const xValues = values(N * inputShape.reduce((a, b) => a * b, 1), 7, 0, 3);
  const x = tf.tensor(xValues, [N, ...inputShape]);
  const y = labels(kind, k);
  const forward = () => {
    const features = block ? (block.apply(x, { training: false }) as tf.Tensor) : x;
    return head.classify(head.pooled(features), true);
  };
  const vars = variables.map((v) => v.read() as tf.Variable);
  let correctT: tf.Scalar | null = null;
  const { value, grads } = tf.variableGrads(() => {
    const p = forward();
    correctT = tf.keep(correctCount(kind, y, p));
    return crossEntropy(kind, y, p);
  }, vars);
  const expected = { loss: (await value.data())[0]!, correct: (await correctT!.data())[0]!, grads: await Promise.all(vars.map(async (v) => (await grads[v.name]!.data()) as Float32Array)) };

  const engine = await createStepEngine({ block: block ? block.layers : [], head, inputShape, loss: kind, variables, seed: 1, engine: 'onnxruntime', threads: 1, blockedLayout });
  const weights = await Promise.all(vars.map(async (v) => Float32Array.from((await v.data()) as Float32Array)));
  const got = await engine!.compute(xValues, (await y.data()) as Float32Array, N, weights);
  await engine!.dispose();
  return { expected, got, names: variables.map((v) => v.name) };
}

/**
 * The top block and head's weights after `steps` steps of TensorFlow.js's optimizer on its own gradients, and
 * after as many steps of the engine applying the update of another such optimizer, from the same weights.
 */
async function afterSteps(make: () => tf.Optimizer, steps: number) {
  const block = topBlock();
  const head = new Head([5, 5, 12], 2, { pooling: 'avg', units: 7, dropout: 0 }, 3);
  const variables = [...block.layers.filter((l) => l.getClassName() !== 'BatchNormalization').flatMap((l) => l.trainableWeights), ...head.trainableWeights];
  const xValues = values(N * SHAPE.reduce((a, b) => a * b, 1), 21, 0, 3);
  const x = tf.tensor(xValues, [N, ...SHAPE]);
  const y = labels('binary', 2);
  const initial = await readWeights(variables);
  const reference = make();
  for (let s = 0; s < steps; s++) {
    reference.minimize(() => crossEntropy('binary', y, head.classify(head.pooled(block.apply(x, { training: false }) as tf.Tensor), true)), false, variables.map((v) => v.read() as tf.Variable));
  }
  const expected = await readWeights(variables);
  writeWeights(variables, initial);
  const optimizer = make();
  const engine = await createStepEngine({ block: block.layers, head, inputShape: SHAPE, loss: 'binary', variables, optimizer, seed: 1, engine: 'onnxruntime', threads: 1 });
  const yValues = Float32Array.from((await y.data()) as Float32Array);
  for (let s = 0; s < steps; s++) writeWeights(variables, (await engine!.compute(xValues, yValues, N, await readWeights(variables))).weights);
  await engine!.dispose();
  return { expected, got: await readWeights(variables), initial, names: variables.map((v) => v.name), optimizer, engineOptimizer: engine!.optimizer };
}

function expectClose(a: Float32Array, b: Float32Array, what: string): void {
  expect(a.length, what).toBe(b.length);
  const scale = Math.max(1e-3, ...Array.from(b, Math.abs));
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  expect(worst / scale, what).toBeLessThan(1e-4);
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('training steps on ONNX Runtime', () => {
  for (const kind of ['binary', 'categorical'] as const) {
    for (const [withBlock, units, blocked] of [[true, 7, true], [true, 7, false], [false, 7, true], [false, 0, true]] as const) {
      const layout = withBlock ? (blocked ? ' (blocked layout where ONNX Runtime has it)' : ' (ONNX ops alone)') : '';
      it(`${kind}: ${withBlock ? 'top block and head' : 'head only'}, hidden units ${units}${layout}: the loss and gradients TensorFlow.js computes`, async () => {
        const { expected, got, names } = await compare(kind, withBlock, units, blocked);
        expect(got.loss).toBeCloseTo(expected.loss, 5);
        expect(got.correct).toBe(expected.correct);
        expect(got.grads.length).toBe(expected.grads.length);
        got.grads.forEach((g, i) => expectClose(g, expected.grads[i]!, names[i]!));
        expect(Math.max(...got.grads.map((g) => Math.max(...Array.from(g, Math.abs))))).toBeGreaterThan(1e-4);
      });
    }
  }

  for (const [name, make] of [
    ['RMSprop', () => tf.train.rmsprop(0.01, 0.9, 0, 1e-7)],
    ['RMSprop with momentum', () => tf.train.rmsprop(0.01, 0.8, 0.5, 1e-7)],
    ['Adam', () => tf.train.adam(0.01)],
    ['SGD', () => tf.train.sgd(0.1)],
  ] as const) {
    it(`applies ${name}'s update in the step: the weights TensorFlow.js's optimizer leaves after three steps`, async () => {
      const { expected, got, initial, names, optimizer, engineOptimizer } = await afterSteps(make, 3);
      expect(engineOptimizer).toBe(optimizer);
      got.forEach((w, i) => expectClose(w, expected[i]!, names[i]!));
      const moved = Math.max(...got.map((w, i) => Math.max(...Array.from(w, (v, j) => Math.abs(v - initial[i]![j]!)))));
      expect(moved).toBeGreaterThan(1e-3);
    });
  }

  it('returns gradients where the optimizer is one the step does not apply (centered RMSprop)', async () => {
    const head = new Head([12], 2, { pooling: 'avg', units: 0, dropout: 0 }, 3);
    const optimizer = tf.train.rmsprop(0.01, 0.9, 0, 1e-7, true);
    const engine = await createStepEngine({ block: [], head, inputShape: [12], loss: 'binary', variables: head.trainableWeights, optimizer, seed: 1, engine: 'onnxruntime', threads: 1 });
    const weights = await Promise.all(head.trainableWeights.map(async (v) => Float32Array.from((await v.read().data()) as Float32Array)));
    const r = await engine!.compute(values(N * 12, 3, 0, 1), Float32Array.from({ length: N }, (_, i) => i % 2), N, weights);
    await engine!.dispose();
    expect(engine!.optimizer).toBeNull();
    expect(r.weights).toEqual([]);
    expect(r.grads.map((g) => g.length)).toEqual(weights.map((w) => w.length));
  });

  it('evaluates in inference mode: no dropout, the loss and right answers TensorFlow.js computes', async () => {
    const block = topBlock();
    const head = new Head([5, 5, 12], 3, { pooling: 'avg', units: 7, dropout: 0.5 }, 3);
    const variables = [...block.layers.filter((l) => l.getClassName() !== 'BatchNormalization').flatMap((l) => l.trainableWeights), ...head.trainableWeights];
    const xValues = values(N * SHAPE.reduce((a, b) => a * b, 1), 9, 0, 3);
    const x = tf.tensor(xValues, [N, ...SHAPE]);
    const y = labels('categorical', 3);
    const p = head.classify(head.pooled(block.apply(x, { training: false }) as tf.Tensor), false);
    const loss = (await crossEntropy('categorical', y, p).data())[0]!;
    const correct = (await correctCount('categorical', y, p).data())[0]!;
    const engine = await createStepEngine({ block: block.layers, head, inputShape: SHAPE, loss: 'categorical', variables, seed: 1, engine: 'onnxruntime', threads: 1 });
    const weights = await Promise.all(variables.map(async (v) => Float32Array.from((await v.read().data()) as Float32Array)));
    const yValues = Float32Array.from((await y.data()) as Float32Array);
    const got = await engine!.evaluate(xValues, yValues, N, weights);
    const again = await engine!.evaluate(xValues, yValues, N, weights);
    const trainingLoss = (await engine!.compute(xValues, yValues, N, weights)).loss;
    await engine!.dispose();
    expect(got.loss).toBeCloseTo(loss, 5);
    expect(got.correct).toBe(correct);
    expect(again.loss).toBe(got.loss);
    expect(trainingLoss).not.toBeCloseTo(loss, 4); // dropout is on in training steps
  });

  it('refuses what the graph cannot express, and auto falls back to TensorFlow.js', async () => {
    const input = tf.input({ shape: SHAPE });
    const out = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }).apply(input) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    const head = new Head([5, 5, 4], 2, { pooling: 'avg', units: 0, dropout: 0 }, 1);
    const opts = { block: model.layers, head, inputShape: SHAPE, loss: 'binary' as const, variables: [...model.layers[1]!.trainableWeights, ...head.trainableWeights], seed: 1 };
    const reasons: string[] = [];
    expect(await createStepEngine({ ...opts, engine: 'auto', log: (o) => reasons.push(String((o as { reason?: string }).reason)) })).toBeNull();
    expect(reasons.join()).toMatch(/1x1/);
    await expect(createStepEngine({ ...opts, engine: 'onnxruntime' })).rejects.toThrow(/ONNX Runtime/);
  });

  for (const inGraph of [true, false]) {
    it(`fit() with the engine lowers the training loss of the top block and head (the update ${inGraph ? 'in the step' : 'by the optimizer'})`, async () => {
      const block = topBlock();
      const head = new Head([5, 5, 12], 2, { pooling: 'avg', units: 7, dropout: 0.5 }, 3);
      const variables = [...block.layers.filter((l) => l.getClassName() !== 'BatchNormalization').flatMap((l) => l.trainableWeights), ...head.trainableWeights];
      const store = new FeatureStore([SHAPE], 'binary', 2, 8, 1);
      const per = SHAPE.reduce((a, b) => a * b, 1);
      for (let i = 0; i < 32; i++) {
        const v = values(per, 100 + i, 0, 1);
        if (i % 2) for (let j = 0; j < per; j++) v[j] = v[j]! + 1.5; // class 1: brighter
        store.add([v], i % 2);
      }
      const optimizer = tf.train.adam(0.01);
      const gradients = await createStepEngine({ block: block.layers, head, inputShape: SHAPE, loss: 'binary', variables, ...(inGraph ? { optimizer } : {}), seed: 1, engine: 'onnxruntime', threads: 1 });
      expect(gradients!.optimizer).toBe(inGraph ? optimizer : null);
      const history: Parameters<typeof fit>[0]['history'] = [];
      const forward = (xs: tf.Tensor[], training: boolean) => head.classify(head.pooled(block.apply(xs[0]!, { training: false }) as tf.Tensor), training);
      const state = newPhaseState();
      const run = (epochs: number) =>
        fit({ phase: 'fine_tuning', attempt: 1, epochs, forward, variables, optimizer, loss: 'binary', train: store, validation: null, patience: null, state, history, gradients });
      await run(1); // burn-in: the optimizer's slots
      const tensors = tf.memory().numTensors;
      await run(15);
      expect(tf.memory().numTensors).toBe(tensors);
      await gradients!.dispose();
      expect(history.at(-1)!.loss).toBeLessThan(history[0]!.loss * 0.7);
      expect(history.at(-1)!.accuracy).toBeGreaterThan(0.65);
    });
  }
});

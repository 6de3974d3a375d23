// Data-parallel training steps: worker-thread replicas that compute the gradients of shares of a batch give
// the same step as one thread computing the whole batch, for a model trained as a whole (scratch) and for a
// top block with a head on it (fine-tuning, batch normalization frozen).
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend';
import { loadBackbone } from '../src/backbones';
import { FeatureStore } from '../src/features';
import { fineTuneForward, prepareFineTuning } from '../src/fine-tune';
import { fit, newPhaseState, readWeights, writeWeights, type Forward, type HistoryRow } from '../src/fit';
import { Head } from '../src/head';
import { GradientReplicas, variableRefs, type ReplicaSpec } from '../src/replicas';
import { buildScratchModel } from '../src/scratch';
import { createTinyBackboneSource, TINY_BACKBONE } from './fixtures';

let backend: string;
let tiny: { source: string; cleanup(): void };
beforeAll(async () => {
  backend = await initBackend();
  tiny = await createTinyBackboneSource();
});
afterAll(() => tiny?.cleanup());

/** A store of n random samples of the given shape with alternating labels. */
function randomStore(shape: number[], n: number, batchSize: number, seed: number): FeatureStore {
  const store = new FeatureStore([shape], 'binary', 2, batchSize, seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const data = tf.tidy(() => tf.randomUniform([n, size], 0, 1, 'float32', seed).dataSync() as Float32Array);
  for (let i = 0; i < n; i++) store.add([data.slice(i * size, (i + 1) * size)], i % 2);
  return store;
}

/** Trains one epoch from the same start with and without replicas; returns both final weights. */
async function oneEpochBothWays(
  variables: tf.LayerVariable[],
  forward: Forward,
  store: FeatureStore,
  spec: ReplicaSpec,
  extraLoss?: () => tf.Scalar | null,
): Promise<{ single: Float32Array[]; parallel: Float32Array[]; start: Float32Array[]; logged: string[] }> {
  const start = await readWeights(variables);
  const run = async (replicas: GradientReplicas | null) => {
    writeWeights(variables, start);
    const optimizer = tf.train.sgd(0.1);
    const history: HistoryRow[] = [];
    await fit({ phase: 'fine_tuning', attempt: 1, epochs: 1, forward, variables, extraLoss, optimizer, loss: 'binary', train: store, validation: null, patience: null, state: newPhaseState(), history, replicas });
    optimizer.dispose();
    return { weights: await readWeights(variables), history };
  };
  const single = await run(null);
  const logged: string[] = [];
  const replicas = await GradientReplicas.start(spec, 1, (_o, msg) => logged.push(msg));
  expect(replicas).not.toBeNull();
  try {
    const parallel = await run(replicas);
    expect(parallel.history[0]!.loss).toBeCloseTo(single.history[0]!.loss, 5);
    expect(parallel.history[0]!.accuracy).toBe(single.history[0]!.accuracy);
    return { single: single.weights, parallel: parallel.weights, start, logged };
  } finally {
    await replicas!.dispose();
  }
}

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  let d = 0;
  a.forEach((x, i) => x.forEach((v, j) => (d = Math.max(d, Math.abs(v - b[i]![j]!)))));
  return d;
}

describe('training replicas', () => {
  it('share the steps of the scratch convnet and give the one-thread result', async () => {
    const model = buildScratchModel(48, 2, 0, 3);
    try {
      const store = randomStore([48, 48, 3], 10, 5, 1);
      const variables = model.trainableWeights;
      const spec: ReplicaSpec = {
        topology: model.toJSON(null, false) as object,
        weights: await readWeights(model.weights),
        head: null,
        loss: 'binary',
        numClasses: 2,
        variables: variableRefs(model, [], variables),
        backend,
      };
      const forward: Forward = (xs, training) => model.apply(xs[0]!, { training }) as tf.Tensor;
      const before = tf.memory().numTensors;
      const r = await oneEpochBothWays(variables, forward, store, spec);
      expect(tf.memory().numTensors).toBe(before);
      expect(r.logged.some((m) => /worker thread/.test(m))).toBe(true);
      expect(maxDiff(r.single, r.start)).toBeGreaterThan(1e-3);
      expect(maxDiff(r.parallel, r.single)).toBeLessThan(1e-5);
    } finally {
      model.dispose();
    }
  });

  it('share fine-tuning steps of a top block (frozen batch normalization) with a head and a regularizer', async () => {
    const base = await loadBackbone(TINY_BACKBONE, tiny.source);
    const parts = prepareFineTuning(base, 'tiny_top_conv');
    const featureShape = (base.outputs[0]!.shape as number[]).slice(1);
    const head = new Head(featureShape, 2, { pooling: 'avg', units: 8, dropout: 0 }, 2);
    try {
      const lowerShape = (parts.lower.outputs[0]!.shape as number[]).slice(1);
      const store = randomStore(lowerShape, 9, 4, 2);
      const variables = [...parts.blockWeights, ...head.trainableWeights];
      const spec: ReplicaSpec = {
        topology: parts.upper.toJSON(null, false) as object,
        weights: await readWeights(parts.upper.weights),
        head: { featureShape, numClasses: 2, config: head.config, seed: 2 },
        loss: 'binary',
        numClasses: 2,
        variables: variableRefs(parts.upper, head.layers, variables),
        backend,
      };
      // An L2 term computed on this thread only, as a layer regularizer would be.
      const extraLoss = () => tf.mul(0.01, tf.sum(tf.square(parts.blockWeights[0]!.read()))) as tf.Scalar;
      const bnBefore = await readWeights(base.getLayer('tiny_top_bn').weights);
      const r = await oneEpochBothWays(variables, fineTuneForward(parts, head), store, spec, extraLoss);
      expect(maxDiff(r.single, r.start)).toBeGreaterThan(1e-3);
      expect(maxDiff(r.parallel, r.single)).toBeLessThan(1e-5);
      expect(await readWeights(base.getLayer('tiny_top_bn').weights)).toEqual(bnBefore);
    } finally {
      head.dispose();
      base.dispose();
    }
  });

  it('do not start for a spec whose variables the replica does not have, and say why', async () => {
    const model = buildScratchModel(48, 2, 0, 3);
    const logged: { obj: Record<string, unknown>; msg: string }[] = [];
    try {
      const replicas = await GradientReplicas.start(
        {
          topology: model.toJSON(null, false) as object,
          weights: await readWeights(model.weights),
          head: null,
          loss: 'binary',
          numClasses: 2,
          variables: [{ owner: 'model', layer: 'no_such_layer', index: 0 }],
          backend,
        },
        1,
        (obj, msg) => logged.push({ obj: obj as Record<string, unknown>, msg }),
      );
      expect(replicas).toBeNull();
      expect(String(logged[0]!.obj.reason)).toMatch(/no_such_layer/);
    } finally {
      model.dispose();
    }
  });
});

// Training steps on ONNX Runtime: the loss and the gradients of a batch come from the step graph
// (step-graph.ts) run on every core by ONNX Runtime's matrix kernels, and fit() applies them with the phase's
// TensorFlow.js optimizer, so the weights, the optimizer state, validation and checkpoints stay as they are.
// On this project's 2-core machine a fine-tuning step of MobileNet's top block runs several times faster than
// on the TensorFlow.js wasm backend (bench/train-speed.ts).
//
// TrainOptions.trainEngine (GRAFT_TRAIN_ENGINE) picks: 'auto' (default: ONNX Runtime where it loads and the
// graph can express the trained layers, TensorFlow.js otherwise), 'onnxruntime' (an error where it cannot be
// used) or 'tfjs'.
import { availableParallelism } from 'node:os';
import type * as Ort from 'onnxruntime-node';
import type { FrozenEngineSetting } from '@graft/config/engines';
import * as tf from '@tensorflow/tfjs';
import type { LogFn } from './backend';
import { VisionError } from './errors';
import type { LossKind } from './fit';
import type { Head } from './head';
import { createRng, deriveSeed, type Rng } from './random';
import { buildStepGraph, UnsupportedStepError, type StepGraph, type StepLayer } from './step-graph';

/** Computes what one training step needs; fit() applies the gradients. */
export interface GradientEngine {
  readonly name: 'onnxruntime';
  /** Mean loss, right answers and the gradient of each trained variable for a batch at the given weights. */
  compute(x: Float32Array, y: Float32Array, n: number, weights: Float32Array[]): Promise<{ loss: number; correct: number; grads: Float32Array[] }>;
  /** Mean loss and right answers of a batch in inference mode (no dropout), without gradients. */
  evaluate(x: Float32Array, y: Float32Array, n: number, weights: Float32Array[]): Promise<{ loss: number; correct: number }>;
  dispose(): Promise<void>;
}

export interface StepEngineOptions {
  /** The trained block's layers in order (none where only the head is trained). */
  block: tf.layers.Layer[];
  head: Head;
  /** Shape of one input sample: the block's input, or the head's pooled vector. */
  inputShape: number[];
  loss: LossKind;
  /** The variables fit() trains, in its order. */
  variables: tf.LayerVariable[];
  seed: number;
  /** 'auto' (default): ONNX Runtime where it loads and can express the layers; or one engine only. */
  engine?: FrozenEngineSetting;
  threads?: number;
  log?: LogFn;
  what?: string;
}

async function stepLayers(layers: tf.layers.Layer[]): Promise<StepLayer[]> {
  return Promise.all(
    layers.map(async (l) => ({
      className: l.getClassName(),
      config: l.getConfig() as Record<string, unknown>,
      weights: await Promise.all(
        l.weights.map(async (w) => ({ variable: w, value: Float32Array.from((await w.read().data()) as Float32Array), shape: w.shape as number[] })),
      ),
    })),
  );
}

/**
 * An engine for the trained part described, or null (logged, with the reason) where training stays on
 * TensorFlow.js. The frozen weights (batch normalization) are read now: build it after they are final.
 */
export async function createStepEngine(o: StepEngineOptions): Promise<GradientEngine | null> {
  const wanted = o.engine ?? 'auto';
  if (wanted === 'tfjs') return null;
  const log = o.log ?? (() => {});
  try {
    const block = (await stepLayers(o.block)).filter((l) => l.className !== 'InputLayer');
    const headPooling = o.inputShape.length === 3 ? o.head.config.pooling : null;
    if (headPooling !== null && headPooling !== 'avg') throw new UnsupportedStepError(`head pooling '${headPooling}'`);
    const spec = { block, pooling: headPooling, head: await stepLayers(o.head.layers), inputShape: o.inputShape, loss: o.loss, variables: o.variables } as const;
    const graph = buildStepGraph(spec);
    const evalGraph = buildStepGraph(spec, { backward: false });
    const ort = await loadOrt();
    const threads = o.threads ?? availableParallelism();
    const open = (onnx: Uint8Array) =>
      ort.InferenceSession.create(onnx, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        executionProviders: ['cpu'],
        extra: { session: { intra_op: { allow_spinning: '0' } } },
      });
    const train = await open(graph.onnx);
    const evaluate = await open(evalGraph.onnx).catch(async (err) => {
      await train.release();
      throw err;
    });
    log({ what: o.what, threads }, 'training steps run on ONNX Runtime');
    return new OrtStepEngine(ort, { train, evaluate }, graph, evalGraph, o.inputShape, o.variables.map((v) => v.shape as number[]), createRng(deriveSeed(o.seed, 'dropout')));
  } catch (err) {
    if (wanted === 'onnxruntime') {
      throw new VisionError('ONNX_RUNTIME_UNAVAILABLE', `training steps cannot run on ONNX Runtime: ${(err as Error).message}`);
    }
    log({ what: o.what, reason: (err as Error).message }, 'training steps run on TensorFlow.js');
    return null;
  }
}

let ortPromise: Promise<typeof Ort> | undefined;
function loadOrt(): Promise<typeof Ort> {
  ortPromise ??= import('onnxruntime-node').then((m) => {
    const mod = m as typeof Ort & { default?: typeof Ort };
    return mod.InferenceSession ? mod : (mod.default as typeof Ort);
  });
  return ortPromise;
}

class OrtStepEngine implements GradientEngine {
  readonly name = 'onnxruntime' as const;
  private disposed = false;

  constructor(
    private readonly ort: typeof Ort,
    private readonly sessions: { train: Ort.InferenceSession; evaluate: Ort.InferenceSession },
    private readonly graph: StepGraph,
    private readonly evalGraph: StepGraph,
    private readonly inputShape: number[],
    private readonly weightShapes: number[][],
    private readonly rng: Rng,
  ) {}

  /** The session's inputs; dropout masks drawn (training) or ones (inference). */
  private feeds(x: Float32Array, y: Float32Array, n: number, weights: Float32Array[], training: boolean): Record<string, Ort.Tensor> {
    if (this.disposed) throw new Error('the training engine was disposed');
    const T = this.ort.Tensor;
    // ONNX Runtime checks the array's class; arrays from another realm (worker, test sandbox) are copied.
    const own = (a: Float32Array) => (a instanceof Float32Array ? a : Float32Array.from(a));
    const feeds: Record<string, Ort.Tensor> = {
      x: new T('float32', own(x), [n, ...this.inputShape]),
      y: new T('float32', own(y), [n, y.length / n]),
      inv_n: new T('float32', Float32Array.of(1 / n), []),
    };
    this.graph.dropouts.forEach((d, i) => {
      const keep = 1 / (1 - d.rate);
      const mask = new Float32Array(n * d.width);
      if (training) for (let j = 0; j < mask.length; j++) mask[j] = this.rng() < d.rate ? 0 : keep;
      else mask.fill(1);
      feeds[`mask_${i}`] = new T('float32', mask, [n, d.width]);
    });
    weights.forEach((w, i) => {
      feeds[`w${i}`] = new T('float32', own(w), this.weightShapes[i]!);
    });
    return feeds;
  }

  async compute(x: Float32Array, y: Float32Array, n: number, weights: Float32Array[]) {
    const out = await this.sessions.train.run(this.feeds(x, y, n, weights, true));
    const names = this.graph.outputs;
    return {
      loss: (out[names.loss]!.data as Float32Array)[0]!,
      correct: (out[names.correct]!.data as Float32Array)[0]!,
      grads: names.grads.map((name) => out[name]!.data as Float32Array),
    };
  }

  async evaluate(x: Float32Array, y: Float32Array, n: number, weights: Float32Array[]) {
    const out = await this.sessions.evaluate.run(this.feeds(x, y, n, weights, false));
    const names = this.evalGraph.outputs;
    return { loss: (out[names.loss]!.data as Float32Array)[0]!, correct: (out[names.correct]!.data as Float32Array)[0]! };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all([this.sessions.train.release(), this.sessions.evaluate.release()]);
  }
}

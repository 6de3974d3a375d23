// Training steps on ONNX Runtime: the loss of a batch and either the gradients (which fit() applies with the
// phase's TensorFlow.js optimizer) or, where the step graph can apply that optimizer's update (RMSprop, Adam,
// SGD; step-update.ts), the new weights, come from the step graph (step-graph.ts) run on every core by ONNX
// Runtime's kernels. The optimizer's slots then live here, between steps, as ONNX Runtime tensors; the weights
// stay TensorFlow.js variables, so validation and checkpoints are as they were. On this project's 2-core
// machine a fine-tuning step of MobileNet's top block runs several times faster than on the TensorFlow.js wasm
// backend, and per image at about PyTorch's speed (bench/train-speed.ts).
//
// TrainOptions.trainEngine (GRAFT_TRAIN_ENGINE) picks: 'auto' (default: ONNX Runtime where it loads and the
// graph can express the trained layers, TensorFlow.js otherwise), 'onnxruntime' (an error where it cannot be
// used) or 'tfjs'.
import { availableParallelism } from 'node:os';
import type * as Ort from 'onnxruntime-node';
import type { FrozenEngineSetting } from '@graft/config/engines';
import { attr, GraphBuilder } from '@graft/inference/onnx-graph';
import { encodeModel } from '@graft/inference/onnx-proto';
import * as tf from '@tensorflow/tfjs';
import type { LogFn } from './backend';
import { VisionError } from './errors';
import type { LossKind } from './fit';
import type { Head } from './head';
import { createRng, deriveSeed, type Rng } from './random';
import { buildStepGraph, UnsupportedStepError, type StepGraph, type StepGraphSpec, type StepLayer } from './step-graph';
import { stepScalars, updateRule } from './step-update';

/** Computes what one training step needs: the gradients for fit() to apply, or the step's new weights. */
export interface GradientEngine {
  readonly name: 'onnxruntime';
  /** The optimizer whose update each step applies (its slots kept here); null: fit() applies the gradients. */
  readonly optimizer: tf.Optimizer | null;
  /**
   * Mean loss and right answers for a batch at the given weights, and either the gradient of each trained
   * variable or (with an optimizer) its value after the optimizer's update.
   */
  compute(x: Float32Array, y: Float32Array, n: number, weights: Float32Array[]): Promise<StepResult>;
  /** Mean loss and right answers of a batch in inference mode (no dropout), without gradients. */
  evaluate(x: Float32Array, y: Float32Array, n: number, weights: Float32Array[]): Promise<{ loss: number; correct: number }>;
  dispose(): Promise<void>;
}

export interface StepResult {
  loss: number;
  correct: number;
  /** Gradients, where the engine has no optimizer; else empty. */
  grads: Float32Array[];
  /** The updated weights, where it has one; else empty. */
  weights: Float32Array[];
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
  /**
   * The phase's optimizer: where the step graph can apply its update (updateRule()), each step returns the
   * new weights and fit() applies nothing; the optimizer's own slots are then left unused.
   */
  optimizer?: tf.Optimizer;
  seed: number;
  /** false: ONNX ops alone, without ONNX Runtime's blocked-layout ops (com.microsoft.nchwc) where it has them. */
  blockedLayout?: boolean;
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
    const update = o.optimizer ? updateRule(o.optimizer) : null;
    const spec = { block, pooling: headPooling, head: await stepLayers(o.head.layers), inputShape: o.inputShape, loss: o.loss, variables: o.variables, update } as const;
    const ort = await loadOrt();
    const threads = o.threads ?? availableParallelism();
    const nchwcBlock = o.blockedLayout === false ? null : await nchwcBlockSize(ort);
    // Where a session will not take the blocked-layout ops, the graphs without them.
    const { graph, evalGraph, train, evaluate } = await openStepSessions(ort, spec, nchwcBlock, threads).catch((err) =>
      nchwcBlock === null ? Promise.reject(err) : openStepSessions(ort, spec, null, threads),
    );
    log({ what: o.what, threads, update: update?.kind ?? null }, 'training steps run on ONNX Runtime');
    const shapes = o.variables.map((v) => v.shape as number[]);
    return new OrtStepEngine(ort, { train, evaluate }, { graph, evalGraph }, update ? o.optimizer! : null, o.inputShape, shapes, createRng(deriveSeed(o.seed, 'dropout')));
  } catch (err) {
    if (wanted === 'onnxruntime') {
      throw new VisionError('ONNX_RUNTIME_UNAVAILABLE', `training steps cannot run on ONNX Runtime: ${(err as Error).message}`);
    }
    log({ what: o.what, reason: (err as Error).message }, 'training steps run on TensorFlow.js');
    return null;
  }
}

/** The step graph and its inference-only graph, built with or without the blocked layout, in sessions. */
async function openStepSessions(ort: typeof Ort, spec: StepGraphSpec, nchwcBlock: number | null, threads: number) {
  const graph = buildStepGraph(spec, { nchwcBlock });
  const evalGraph = buildStepGraph(spec, { backward: false, nchwcBlock });
  const open = (onnx: Uint8Array) =>
    ort.InferenceSession.create(onnx, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
      // The weight gradient's Transpose stays apart from its MatMul (a fused transposed operand runs slower).
      extra: { session: { intra_op: { allow_spinning: '0' } }, optimization: { disable_specified_optimizers: 'MatmulTransposeFusion' } },
    });
  const train = await open(graph.onnx);
  const evaluate = await open(evalGraph.onnx).catch(async (err) => {
    await train.release();
    throw err;
  });
  return { graph, evalGraph, train, evaluate };
}

let ortPromise: Promise<typeof Ort> | undefined;
function loadOrt(): Promise<typeof Ort> {
  ortPromise ??= import('onnxruntime-node').then((m) => {
    const mod = m as typeof Ort & { default?: typeof Ort };
    return mod.InferenceSession ? mod : (mod.default as typeof Ort);
  });
  return ortPromise;
}

let blockPromise: Promise<number | null> | undefined;
/**
 * Channels per block of ONNX Runtime's blocked layout (its com.microsoft.nchwc ops: 8 with AVX2, 16 with
 * AVX-512), read from the shape of four channels reordered (it takes multiples of 4); null where the CPU
 * provider has no such ops.
 */
function nchwcBlockSize(ort: typeof Ort): Promise<number | null> {
  blockPromise ??= (async () => {
    const g = new GraphBuilder();
    const x = g.addInput('x', [1, 1, 1, 4]);
    g.outputs.push({ name: g.addIn('com.microsoft.nchwc', 'ReorderInput', [x], [attr.int('channels_last', 1)]), shape: [1, null, 1, 1] });
    try {
      const session = await ort.InferenceSession.create(encodeModel(g.toModel(13, {}, 'nchwc_probe')), { executionProviders: ['cpu'], logSeverityLevel: 3 });
      try {
        const out = await session.run({ x: new ort.Tensor('float32', new Float32Array(4), [1, 1, 1, 4]) });
        return Number(Object.values(out)[0]!.dims[1]);
      } finally {
        await session.release();
      }
    } catch {
      return null;
    }
  })();
  return blockPromise;
}

class OrtStepEngine implements GradientEngine {
  readonly name = 'onnxruntime' as const;
  private disposed = false;
  private readonly graph: StepGraph;
  private readonly evalGraph: StepGraph;
  /** The update's slots as the last step left them (zeros before the first), and the steps taken. */
  private slots: Ort.Tensor[][];
  private steps = 0;

  constructor(
    private readonly ort: typeof Ort,
    private readonly sessions: { train: Ort.InferenceSession; evaluate: Ort.InferenceSession },
    graphs: { graph: StepGraph; evalGraph: StepGraph },
    readonly optimizer: tf.Optimizer | null,
    private readonly inputShape: number[],
    private readonly weightShapes: number[][],
    private readonly rng: Rng,
  ) {
    ({ graph: this.graph, evalGraph: this.evalGraph } = graphs);
    const zeros = (shape: number[]) => new ort.Tensor('float32', new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
    this.slots = this.graph.outputs.slots.map((names, i) => names.map(() => zeros(weightShapes[i]!)));
  }

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

  async compute(x: Float32Array, y: Float32Array, n: number, weights: Float32Array[]): Promise<StepResult> {
    const feeds = this.feeds(x, y, n, weights, true);
    const update = this.graph.update;
    if (update) {
      this.slots.forEach((slots, i) => slots.forEach((t, j) => (feeds[`s${i}_${j}`] = t)));
      for (const [name, v] of Object.entries(stepScalars(update, this.steps + 1))) feeds[name] = new this.ort.Tensor('float32', Float32Array.of(v), []);
    }
    const out = await this.sessions.train.run(feeds);
    const names = this.graph.outputs;
    if (update) {
      this.slots = names.slots.map((slotNames) => slotNames.map((name) => out[name]!));
      this.steps++;
    }
    return {
      loss: (out[names.loss]!.data as Float32Array)[0]!,
      correct: (out[names.correct]!.data as Float32Array)[0]!,
      grads: names.grads.map((name) => out[name]!.data as Float32Array),
      weights: names.weights.map((name) => out[name]!.data as Float32Array),
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

// Forward passes through a frozen model (a backbone, or the part of one below the block that fine-tuning trains)
// on plain float arrays: TensorFlow.js where its backend computes on a GPU (webgpu, tfjs-node-gpu: MobileNet v1
// 0.75 at 224 runs at about 5,000 images/s on webgpu on an H200, more than any CPU path), else ONNX Runtime on
// the CPU where it loads and the converter (@graft/inference) can express every layer, else TensorFlow.js. The
// choice, and the reason for it, are logged. On a GPU, tf.data() of a batch waits for the GPU without blocking
// this thread, so the callers' pipelines (features.ts) decode and augment the next batches meanwhile.
//
// onnxruntime-node runs a session synchronously on the calling thread, so the session runs in a worker thread
// (@graft/inference's SessionHost with one worker): while it computes one batch, the main thread decodes and
// augments the next one, or trains. Where the worker cannot start, the session runs on the main thread.
//
// opts.engine (GRAFT_FROZEN_ENGINE, read by @graft/config) forces one engine: 'onnxruntime' (an error where it
// cannot be used), 'tfjs', or 'auto' (default). opts.precision 'int8' (GRAFT_FROZEN_PRECISION) makes an ONNX
// Runtime model calibrate int8 on its first inputs and run in int8 where it stays close to fp32 (frozen-int8.ts).
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { FrozenEngineSetting } from '@graft/config/engines';
import { backendOnGpu, type LogFn } from './backend';
import { VisionError } from './errors';
import { inputValues, int8FrozenModel, type FrozenInt8Options } from './frozen-int8';
import { parseJsonFile, saveLayersModelToFiles } from './model-files';

export type FrozenEngine = Exclude<FrozenEngineSetting, 'auto'>;

export interface FrozenModel {
  readonly engine: FrozenEngine;
  /** Whether runs happen on another thread (the caller's thread is free meanwhile). */
  readonly threaded: boolean;
  /** Shape of one input sample (NHWC without the batch dimension). */
  readonly inputShape: number[];
  /** Shape of one output sample, per output. */
  readonly outputShapes: number[][];
  /**
   * Runs `batch` samples laid out one after the other (or a tensor of them, which is disposed); one array per
   * output, samples one after the other. Runs may overlap: they are computed in the order they were asked for.
   * With `transfer`, the input's buffer may be handed to the worker thread (it is then unusable here). With `fp32`,
   * an int8 model (frozen-int8.ts) runs this batch on its fp32 original; every other model is fp32 anyway.
   */
  run(input: Float32Array | tf.Tensor, batch: number, opts?: FrozenRunOptions): Promise<Float32Array[]>;
  /** Frees the session (the TF.js model itself stays with its owner). May be called more than once. */
  dispose(): Promise<void>;
}

export interface FrozenRunOptions {
  transfer?: boolean;
  fp32?: boolean;
  /**
   * Called with the input array once the run no longer reads it, where the run went to ONNX Runtime (in a worker
   * thread its whole buffer travels there and back, @graft/inference's RunOptions.giveBack), so that the caller can
   * fill it again instead of allocating the next batch's.
   */
  giveBack?(input: Float32Array): void;
}

export interface FrozenModelOptions {
  engine?: 'auto' | FrozenEngine;
  /** ONNX Runtime intra-op threads; default: the number of cores. */
  threads?: number;
  /** Run the ONNX Runtime session in a worker thread (default true). */
  worker?: boolean;
  log?: LogFn;
  /** What the model is, for log lines ('backbone', 'lower part'). */
  what?: string;
  /** 'fp32' (default) or 'int8' (ONNX Runtime only: calibrated on the first runs' inputs, kept where close to fp32). */
  precision?: 'fp32' | 'int8';
  int8?: FrozenInt8Options;
}

const shapeOf = (t: tf.SymbolicTensor) => (t.shape as (number | null)[]).slice(1) as number[];
const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);


/**
 * Wraps a frozen TF.js layers model for batched forward passes on float arrays. The weights are read when this
 * is called: later changes to the model's weights do not reach an ONNX Runtime session.
 */
export async function createFrozenModel(model: tf.LayersModel, opts: FrozenModelOptions = {}): Promise<FrozenModel> {
  const log: LogFn = opts.log ?? (() => {});
  const what = opts.what ?? model.name;
  const wanted = opts.engine ?? 'auto';
  const precision = opts.precision ?? 'fp32';
  if (wanted === 'auto' && backendOnGpu()) {
    // int8 is a precision of ONNX Runtime on the CPU; the GPU runs the base in float32.
    log(
      { model: what, engine: 'tfjs', backend: tf.getBackend(), reason: 'gpu', precision: 'fp32' },
      `frozen ${what} runs on TensorFlow.js: its ${tf.getBackend()} backend computes on the GPU`,
    );
    return tfjsModel(model);
  }
  if (wanted !== 'tfjs') {
    const started = performance.now();
    try {
      const ort = await onnxRuntimeModel(model, opts.threads ?? availableParallelism(), opts.worker ?? true, log, what, precision === 'int8' ? (opts.int8 ?? {}) : null);
      log(
        {
          model: what,
          engine: 'onnxruntime',
          executionProvider: ort.provider,
          workerThread: ort.model.threaded,
          seconds: +((performance.now() - started) / 1000).toFixed(2),
        },
        `frozen ${what} runs on ONNX Runtime`,
      );
      return ort.model;
    } catch (err) {
      const reason = (err as Error).message;
      if (wanted === 'onnxruntime') {
        throw new VisionError('ONNX_RUNTIME_UNAVAILABLE', `the frozen ${what} cannot run on ONNX Runtime: ${reason}`, false);
      }
      log({ model: what, engine: 'tfjs', reason }, `frozen ${what} runs on TensorFlow.js: ONNX Runtime cannot be used`);
    }
  } else {
    log({ model: what, engine: 'tfjs', reason: 'requested' }, `frozen ${what} runs on TensorFlow.js (requested)`);
  }
  return tfjsModel(model);
}

function tfjsModel(model: tf.LayersModel): FrozenModel {
  const inputShape = shapeOf(model.inputs[0]!);
  const outputShapes = model.outputs.map(shapeOf);
  return {
    engine: 'tfjs',
    threaded: false,
    inputShape,
    outputShapes,
    async run(input, batch) {
      const outs = tf.tidy(() => {
        const x = input instanceof tf.Tensor ? input : tf.tensor(input, [batch, ...inputShape]);
        const y = model.predict(x) as tf.Tensor | tf.Tensor[];
        return Array.isArray(y) ? y : [y];
      });
      if (input instanceof tf.Tensor) input.dispose();
      try {
        return (await Promise.all(outs.map((t) => t.data()))) as Float32Array[];
      } finally {
        tf.dispose(outs);
      }
    },
    async dispose() {},
  };
}

type Inference = typeof import('@graft/inference');

/** The model as ONNX bytes (throws UnsupportedLayerError for a layer the converter cannot express). */
async function toOnnx(inference: Inference, model: tf.LayersModel): Promise<Uint8Array> {
  const files = await saveLayersModelToFiles(model);
  const json = parseJsonFile(files['model.json']!, 'model.json');
  return inference.exportOnnx(json, files['weights.bin']!);
}

async function onnxRuntimeModel(
  model: tf.LayersModel,
  threads: number,
  useWorker: boolean,
  log: LogFn,
  what: string,
  int8: FrozenInt8Options | null,
): Promise<{ model: FrozenModel; provider: string }> {
  if (model.inputs.length !== 1) throw new Error(`the model has ${model.inputs.length} inputs; ONNX Runtime is used for one`);
  if (model.outputs.length !== 1) throw new Error(`the model has ${model.outputs.length} outputs; ONNX Runtime is used for one`);
  let inference: Inference;
  try {
    inference = await import('@graft/inference');
  } catch (err) {
    throw new Error(`@graft/inference does not load: ${(err as Error).message}`);
  }
  if (!(await inference.isOnnxRuntimeAvailable())) throw new Error('onnxruntime-node does not load on this machine');
  const onnx = await toOnnx(inference, model);
  const opened = await openOnnx(inference, model, onnx, threads, useWorker, log, what);
  if (!int8) return opened;
  // quantizeOnnx rounds the last convolution's output too, so it runs as an integer kernel (the outputs of both frozen
  // parts are 8-bit values then).
  const quantize = async (bytes: Uint8Array, batches: { input: Float32Array; batch: number }[]) =>
    (await inference.quantizeOnnx(bytes, batches, { method: 'minmax', threads, inputPixels: int8.inputPixels })).model;
  // The int8 session opens beside the fp32 one (in its worker thread where it has one), not in a thread of its own.
  const reopen = async (bytes: Uint8Array) => (await openOnnx(inference, model, bytes, threads, opened.host !== null, log, what, opened.host)).model;
  return { provider: opened.provider, model: int8FrozenModel(opened.model, onnx, quantize, reopen, log, what, int8) };
}

type Host = InstanceType<Inference['SessionHost']>;

/**
 * Opens ONNX bytes of `model` in ONNX Runtime: in a worker thread where one starts, else on this thread. `shared`, the
 * worker thread of a model opened before: the session opens there, and disposing it leaves that thread running.
 */
async function openOnnx(
  inference: Inference,
  model: tf.LayersModel,
  onnx: Uint8Array,
  threads: number,
  useWorker: boolean,
  log: LogFn,
  what: string,
  shared: Host | null = null,
): Promise<{ model: FrozenModel; provider: string; host: Host | null }> {
  const inputShape = shapeOf(model.inputs[0]!);
  const outputShape = shapeOf(model.outputs[0]!);
  const per = sizeOf(outputShape);
  const check = (out: Float32Array, batch: number) => {
    if (out.length !== batch * per) throw new Error(`ONNX Runtime returned ${out.length} values for ${batch} samples of [${outputShape}]`);
    return [out];
  };
  if (useWorker) {
    // The session host of @graft/inference with one worker thread: runs are computed there in the order asked.
    const host = shared ?? new inference.SessionHost({ workers: 1, threads });
    const release = () => (shared ? Promise.resolve() : host.close());
    try {
      const session = await host.open(onnx);
      let disposed = false;
      return {
        provider: session.provider,
        host,
        model: {
          engine: 'onnxruntime',
          threaded: true,
          inputShape,
          outputShapes: [outputShape],
          run: async (input, batch, o) => {
            if (disposed) throw new Error('the ONNX Runtime session has been disposed');
            return check(await session.run(await inputValues(input), batch, { transfer: o?.transfer ?? false, giveBack: o?.giveBack }), batch);
          },
          async dispose() {
            if (disposed) return;
            disposed = true;
            await session.dispose();
            await release();
          },
        },
      };
    } catch (err) {
      await release();
      if (shared) throw err;
      log({ model: what, reason: (err as Error).message }, `ONNX Runtime session for ${what} runs on the main thread: no worker thread`);
    }
  }
  const session = await inference.createSession(onnx, { threads });
  let disposed = false;
  return {
    provider: session.executionProvider,
    host: null,
    model: {
      engine: 'onnxruntime',
      threaded: false,
      inputShape,
      outputShapes: [outputShape],
      run: async (input, batch, o) => {
        const values = await inputValues(input);
        const out = check(await session.run(values, batch), batch);
        o?.giveBack?.(values);
        return out;
      },
      async dispose() {
        if (disposed) return;
        disposed = true;
        await session.dispose();
      },
    },
  };
}

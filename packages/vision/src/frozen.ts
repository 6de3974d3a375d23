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
import type { HostedSession } from '@graft/inference/host';
import type { PixelTransform } from '@graft/inference/image';
import { backendOnGpu, type LogFn } from './backend';
import { VisionError } from './errors';
import { inputValues, int8FrozenModel, type FrozenInt8Options } from './frozen-int8';
import { parseJsonFile, saveLayersModelToFiles } from './model-files';

export type FrozenEngine = Exclude<FrozenEngineSetting, 'auto'>;

export interface FrozenModel {
  readonly engine: FrozenEngine;
  /** Whether runs happen on another thread (the caller's thread is free meanwhile). */
  readonly threaded: boolean;
  /**
   * Whether runs may be given 8-bit RGB pixels (a Uint8Array, FrozenModelOptions.pixels): normalised in the session's
   * worker thread, or read as they are by a model in int8.
   */
  readonly pixels: boolean;
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
  run(input: FrozenInput, batch: number, opts?: FrozenRunOptions): Promise<Float32Array[]>;
  /** Frees the session (the TF.js model itself stays with its owner). May be called more than once. */
  dispose(): Promise<void>;
}

/** A frozen run's input: network inputs, as values or a tensor of them, or 8-bit RGB pixels where the model takes them. */
export type FrozenInput = Float32Array | Uint8Array | tf.Tensor;

export interface FrozenRunOptions {
  transfer?: boolean;
  fp32?: boolean;
  /**
   * Called with the input array once the run no longer reads it, where the run went to ONNX Runtime (in a worker
   * thread its whole buffer travels there and back, @graft/inference's RunOptions.giveBack), so that the caller can
   * fill it again instead of allocating the next batch's.
   */
  giveBack?(input: Float32Array | Uint8Array): void;
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
  /**
   * The model's input is 8-bit RGB pixels normalised so (a backbone's, or the part of one below a block; not a part
   * above it): on ONNX Runtime runs may then be given the pixels (FrozenModel.pixels), and its int8 model is quantized
   * on their grid (quantizeOnnx's inputPixels) and reads them as they are.
   */
  pixels?: PixelTransform;
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
      const ort = await onnxRuntimeModel(model, opts.threads ?? availableParallelism(), opts.worker ?? true, log, what, opts.pixels ?? null, precision === 'int8' ? (opts.int8 ?? {}) : null);
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
    pixels: false,
    inputShape,
    outputShapes,
    async run(input, batch) {
      if (input instanceof Uint8Array) throw new Error('pixels given to a model that takes no pixels');
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
  pixels: PixelTransform | null,
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
  const opened = await openOnnx(inference, model, onnx, threads, useWorker, log, what, pixels);
  if (!int8) return opened;
  // quantizeOnnx rounds the last convolution's output too, so it runs as an integer kernel (the outputs of both frozen
  // parts are 8-bit values then). Calibration batches given as pixels are normalised for it; the int8 model, quantized
  // on their grid, then reads pixels as they are (@graft/inference pixelInputModel, applied where the session opens).
  const quantize = async (bytes: Uint8Array, batches: { input: Float32Array | Uint8Array; batch: number }[]) => {
    const calibration = batches.map((b) => ({ batch: b.batch, input: b.input instanceof Float32Array ? b.input : normalized(inference, b.input, pixels) }));
    return (await inference.quantizeOnnx(bytes, calibration, { method: 'minmax', threads, inputPixels: pixels ?? undefined })).model;
  };
  // The int8 session opens beside the fp32 one (in its worker thread where it has one), not in a thread of its own.
  const reopen = async (bytes: Uint8Array) => (await openOnnx(inference, model, bytes, threads, opened.host !== null, log, what, pixels, opened.host)).model;
  return { provider: opened.provider, model: int8FrozenModel(opened.model, onnx, quantize, reopen, log, what, int8) };
}

function normalized(inference: Inference, pixels: Uint8Array, t: PixelTransform | null): Float32Array {
  if (!t) throw new Error('pixels given to a model that takes no pixels');
  const out = new Float32Array(pixels.length);
  inference.normalizeInto(pixels, t, out);
  return out;
}

type Host = InstanceType<Inference['SessionHost']>;

/**
 * Opens ONNX bytes of `model` in ONNX Runtime: in a worker thread where one starts, else on this thread. `shared`, the
 * worker thread of a model opened before: the session opens there, and disposing it leaves that thread running.
 * `pixels`: runs may be given 8-bit RGB pixels, which the session normalises so (or reads as they are, a model
 * quantized on their grid).
 */
async function openOnnx(
  inference: Inference,
  model: tf.LayersModel,
  onnx: Uint8Array,
  threads: number,
  useWorker: boolean,
  log: LogFn,
  what: string,
  pixels: PixelTransform | null,
  shared: Host | null = null,
): Promise<{ model: FrozenModel; provider: string; host: Host | null }> {
  const inputShape = shapeOf(model.inputs[0]!);
  const outputShape = shapeOf(model.outputs[0]!);
  const per = sizeOf(outputShape);
  const transform = pixels ? { transform: pixels } : {};
  let host: Host | null = null;
  let session: HostedSession | null = null;
  if (useWorker) {
    // The session host of @graft/inference with one worker thread: runs are computed there in the order asked.
    host = shared ?? new inference.SessionHost({ workers: 1, threads });
    try {
      session = await host.open(onnx, transform);
    } catch (err) {
      if (shared) throw err;
      await host.close();
      host = null;
      log({ model: what, reason: (err as Error).message }, `ONNX Runtime session for ${what} runs on the main thread: no worker thread`);
    }
  }
  session ??= await new inference.LocalSessionHost(threads).open(onnx, transform);
  const owned = host && !shared ? host : null;
  const hosted = session;
  let disposed = false;
  return {
    provider: hosted.provider,
    host,
    model: {
      engine: 'onnxruntime',
      threaded: host !== null,
      pixels: pixels !== null,
      inputShape,
      outputShapes: [outputShape],
      run: async (input, batch, o) => {
        if (disposed) throw new Error('the ONNX Runtime session has been disposed');
        const values = await inputValues(input);
        const out = await hosted.run(values, batch, { transfer: o?.transfer ?? false, giveBack: o?.giveBack });
        if (out.length !== batch * per) throw new Error(`ONNX Runtime returned ${out.length} values for ${batch} samples of [${outputShape}]`);
        return [out];
      },
      async dispose() {
        if (disposed) return;
        disposed = true;
        await hosted.dispose();
        await owned?.close();
      },
    },
  };
}

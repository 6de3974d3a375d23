// ONNX Runtime sessions for converted models. onnxruntime-node is loaded on first use, so that importing this
// package works (and callers can fall back to TF.js) on a machine where its native binding cannot load.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import type * as Ort from 'onnxruntime-node';

type OrtModule = typeof Ort;
export type ExecutionProvider = 'cuda' | 'cpu';
export type InputType = 'float32' | 'uint8';

export interface SessionOptions {
  /** Intra-op threads; default: the number of cores. */
  threads?: number;
  /** 'auto' (default) takes CUDA when this onnxruntime-node build can use it, else the CPU. */
  executionProvider?: ExecutionProvider | 'auto';
  /**
   * Let idle intra-op threads spin-wait for work. Default false (ONNX Runtime's own default is true): spinning
   * threads burn the cores that image decoding, training and the API share with inference, and on a busy
   * 2-core machine that cost ORT up to 40% of its throughput while gaining nothing measurable when idle
   * (bench/extract.ts compares both).
   */
  spinning?: boolean;
}

export interface OrtModel {
  /** Execution provider the session runs on. */
  readonly executionProvider: ExecutionProvider;
  readonly inputName: string;
  readonly outputName: string;
  /** What the input holds: float32 values, or uint8 pixels (a model rewritten by pixelInputModel). */
  readonly inputType: InputType;
  /** Input shape of one sample (without the batch dimension), NHWC for converted convnets. */
  readonly inputShape: readonly number[];
  /** Output shape of one sample (without the batch dimension); entries may be -1 when only known at run time. */
  readonly outputShape: readonly number[];
  /**
   * Runs `batch` samples laid out one after the other in `input` (a Float32Array or a Uint8Array as inputType says);
   * returns the outputs in the same order.
   */
  run(input: Float32Array | Uint8Array, batch: number): Promise<Float32Array>;
  /** Releases the native session; later runs reject. May be called more than once. */
  dispose(): Promise<void>;
}

let ortPromise: Promise<OrtModule> | undefined;

/** onnxruntime-node, loaded on first use. */
export async function loadOrt(): Promise<OrtModule> {
  ortPromise ??= import('onnxruntime-node').then((m) => {
    const mod = m as OrtModule & { default?: OrtModule };
    return mod.InferenceSession ? mod : (mod.default as OrtModule);
  });
  return ortPromise;
}

/** Whether onnxruntime-node and its native binding load on this machine. */
export async function isOnnxRuntimeAvailable(): Promise<boolean> {
  try {
    const ort = await loadOrt();
    return typeof ort.InferenceSession?.create === 'function';
  } catch {
    return false;
  }
}

/**
 * Whether CUDA can be tried: the binding must list it, and when it is not bundled its provider library has to
 * sit beside the binding (it is installed separately), otherwise creating a CUDA session only fails noisily.
 */
function cudaUsable(ort: OrtModule): boolean {
  const backends = ort.listSupportedBackends?.() ?? [];
  const cuda = backends.find((b) => b.name === 'cuda');
  if (!cuda) return false;
  if (cuda.bundled) return true;
  try {
    const require = createRequire(import.meta.url);
    const root = dirname(require.resolve('onnxruntime-node/package.json'));
    const dir = join(root, 'bin', 'napi-v6', process.platform, process.arch);
    return existsSync(join(dir, 'libonnxruntime_providers_cuda.so')) || existsSync(join(dir, 'onnxruntime_providers_cuda.dll'));
  } catch {
    return false;
  }
}

function dimsOf(meta: Ort.InferenceSession.ValueMetadata | undefined, what: string, types: readonly string[] = ['float32']): number[] {
  if (!meta || !meta.isTensor) throw new Error(`the model's ${what} is not a tensor`);
  if (!types.includes(meta.type)) throw new Error(`the model's ${what} is ${meta.type}, expected ${types.join(' or ')}`);
  return meta.shape.slice(1).map((d) => (typeof d === 'number' ? d : -1));
}

/**
 * ONNX Runtime's graph optimizers that Graft's sessions leave out, as session option `extra` entries.
 * WeightBiasQuantization (onnxruntime-node 1.30, every optimization level from basic) rounds, per tensor, the float
 * weights of a Conv or Gemm that reads a DequantizeLinear and feeds a QuantizeLinear: a node quantizeOnnx leaves in
 * fp32 between int8 ones would run in int8 with one scale for all its channels (a depthwise filter's channels differ
 * by orders of magnitude: MobileNet's output then kept a cosine of 0.35 with fp32's where the model as written keeps
 * 0.99).
 */
export const KEEP_AS_WRITTEN = { optimization: { disable_specified_optimizers: 'WeightBiasQuantization' } } as const;

/** Opens an ONNX model (bytes as produced by exportOnnx) in ONNX Runtime. */
export async function createSession(onnxBytes: Uint8Array, opts: SessionOptions = {}): Promise<OrtModel> {
  const ort = await loadOrt();
  const threads = opts.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`);
  const base: Ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: opts.spinning ? '1' : '0' } }, ...KEEP_AS_WRITTEN },
  };
  const wanted = opts.executionProvider ?? 'auto';
  let session: Ort.InferenceSession | undefined;
  let provider: ExecutionProvider = 'cpu';
  if (wanted === 'cuda' || (wanted === 'auto' && cudaUsable(ort))) {
    try {
      session = await ort.InferenceSession.create(onnxBytes, { ...base, executionProviders: ['cuda', 'cpu'] });
      provider = 'cuda';
    } catch (e) {
      if (wanted === 'cuda') throw e;
    }
  }
  session ??= await ort.InferenceSession.create(onnxBytes, { ...base, executionProviders: ['cpu'] });
  return new OrtSessionModel(ort, session, provider);
}

class OrtSessionModel implements OrtModel {
  readonly inputName: string;
  readonly outputName: string;
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly inputType: InputType;
  private readonly sampleSize: number;
  private disposed = false;

  constructor(
    private readonly ort: OrtModule,
    private readonly session: Ort.InferenceSession,
    readonly executionProvider: ExecutionProvider,
  ) {
    if (session.inputNames.length !== 1 || session.outputNames.length !== 1) {
      throw new Error(`expected a model with one input and one output, got ${session.inputNames.length} and ${session.outputNames.length}`);
    }
    this.inputName = session.inputNames[0];
    this.outputName = session.outputNames[0];
    this.inputShape = dimsOf(session.inputMetadata[0], 'input', ['float32', 'uint8']);
    this.inputType = (session.inputMetadata[0] as { type: InputType }).type;
    this.outputShape = dimsOf(session.outputMetadata[0], 'output');
    if (this.inputShape.some((d) => d < 0)) throw new Error(`the model's input shape [${this.inputShape}] is not fixed`);
    this.sampleSize = this.inputShape.reduce((a, b) => a * b, 1);
  }

  async run(input: Float32Array | Uint8Array, batch: number): Promise<Float32Array> {
    if (this.disposed) throw new Error('the ONNX Runtime session has been disposed');
    if ((input instanceof Uint8Array ? 'uint8' : 'float32') !== this.inputType) {
      throw new TypeError(`the model takes ${this.inputType === 'uint8' ? '8-bit pixels (a Uint8Array)' : 'float32 values'}`);
    }
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer, got ${batch}`);
    if (input.length !== batch * this.sampleSize) {
      throw new RangeError(`input has ${input.length} values; batch ${batch} of [${this.inputShape}] needs ${batch * this.sampleSize}`);
    }
    const tensor = input instanceof Uint8Array ? new this.ort.Tensor('uint8', input, [batch, ...this.inputShape]) : new this.ort.Tensor('float32', input, [batch, ...this.inputShape]);
    const results = await this.session.run({ [this.inputName]: tensor });
    const output = results[this.outputName];
    const data = output.data as Float32Array;
    output.dispose();
    return data;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.session.release();
  }
}

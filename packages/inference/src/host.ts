// What serving needs of ONNX Runtime sessions, wherever they run: in worker threads (session-host.ts) or on the
// calling thread (local-host.ts).
import type { PixelTransform } from './image';
import type { InputType } from './session';

export interface RunOptions {
  /** Whether a whole input buffer may be moved to the worker thread instead of copied (default true). */
  transfer?: boolean;
  /**
   * Called with the input (the same view) before the run resolves, once nothing reads it any more, so that the
   * caller can fill its buffer again instead of allocating one per run: the whole buffer goes to the worker thread,
   * even where the input is a view on part of it, and comes back with the output. Not called where the run fails.
   */
  giveBack?(input: Uint8Array | Float32Array): void;
}

/**
 * Batch inputs filled, lent to runs (RunOptions.giveBack) and filled again: the one pool of /predict's batcher and of
 * feature extraction. At most `keep` buffers wait between runs; a run that fails keeps its buffer.
 */
export class LentBuffers<T extends Uint8Array | Float32Array> {
  private readonly spare: T[] = [];

  constructor(
    private readonly type: { new (length: number): T; new (buffer: ArrayBuffer): T },
    private readonly keep: number,
  ) {}

  /** `length` values on a buffer given back before, or on a new one of `capacity` values (at least `length`). */
  take(length: number, capacity: number): T {
    let whole = this.spare.pop();
    if (!whole || whole.length < length) whole = new this.type(Math.max(length, capacity));
    return whole.subarray(0, length) as T;
  }

  /** For RunOptions.giveBack: keeps the whole buffer of an input for a later take. */
  readonly giveBack = (input: Uint8Array | Float32Array): void => {
    if (this.spare.length < this.keep) this.spare.push(new this.type(input.buffer as ArrayBuffer));
  };
}

export interface HostedSession {
  readonly provider: string;
  /** One sample's input shape (no batch dimension). */
  readonly inputShape: readonly number[];
  /**
   * What the opened model reads: 'uint8' where it reads 8-bit pixels as they are (a model quantized on the pixel grid
   * of the transform given to open(), pixel-input.ts), else 'float32'.
   */
  readonly inputType: InputType;
  /** One sample's output shape (no batch dimension; -1 where only known at run time). */
  readonly outputShape: readonly number[];
  /** Worker threads the session is open in: how many runs can go at once. */
  readonly parallelism: number;
  /** False once a worker thread the session lives in has died: the model has to be opened again. */
  readonly alive: boolean;
  /**
   * Runs `batch` samples laid out one after the other. A Uint8Array holds RGB pixels, normalised in the worker
   * per the transform given to open() (or read as they are, inputType 'uint8'); a Float32Array is the network input
   * (put back on the pixel grid for a model that reads pixels). The input buffer is
   * transferred to the worker (do not use it afterwards) unless `transfer` is false, when it is copied.
   * Runs are computed in the order they were asked for.
   */
  run(input: Uint8Array | Float32Array, batch: number, opts?: RunOptions): Promise<Float32Array>;
  /** Closes the session in every worker. May be called more than once. */
  dispose(): Promise<void>;
}

/** What serving needs of a host of ONNX Runtime sessions: SessionHost (worker threads) or LocalSessionHost. */
export interface SessionHostLike {
  readonly workers: number;
  readonly intraOpThreads: number;
  convert(modelJson: object, weights: Uint8Array): Promise<Uint8Array>;
  open(onnx: Uint8Array, opts?: { transform?: PixelTransform }): Promise<HostedSession>;
  close(): Promise<void>;
}

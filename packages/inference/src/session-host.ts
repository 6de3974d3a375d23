// ONNX Runtime sessions run off the caller's thread. onnxruntime-node's run() computes synchronously on the calling
// thread (a MobileNet batch of 8 stalls the event loop for as long as it runs, ~35-60 ms here), so a server must not
// call it on its event loop. A SessionHost keeps a small pool of worker threads (session-worker.ts); each model is
// opened in every worker of the pool, and each run goes to the least busy worker. With one worker the runs of all
// models are serialised, which on a machine with few cores is what keeps ORT's intra-op threads from fighting.
import { WorkerRpc } from './worker-thread';
import type { HostedSession, RunOptions, SessionHostLike } from './host';
import type { PixelTransform } from './image';
import type { InputType } from './session';
import type { HostReply, HostRequest } from './session-worker';

export interface SessionHostOptions {
  /** Worker threads (default 1). */
  workers?: number;
  /** ORT intra-op threads of each session in each worker. */
  threads: number;
}

const WORKER_ENTRY = new URL('./session-worker.ts', import.meta.url);
type HostThread = WorkerRpc<HostRequest>;

/** A pool of worker threads that hold ONNX Runtime sessions. */
export class SessionHost implements SessionHostLike {
  private threads: HostThread[] = [];
  private starting: Promise<HostThread[]> | null = null;
  private closed = false;
  readonly workers: number;
  readonly intraOpThreads: number;

  constructor(opts: SessionHostOptions) {
    this.workers = opts.workers ?? 1;
    this.intraOpThreads = opts.threads;
    if (!Number.isInteger(this.workers) || this.workers < 1) throw new RangeError(`workers must be a positive integer, got ${this.workers}`);
    if (!Number.isInteger(this.intraOpThreads) || this.intraOpThreads < 1) {
      throw new RangeError(`threads must be a positive integer, got ${this.intraOpThreads}`);
    }
  }

  /** Starts the worker threads now (they start on first use otherwise); rejects where they cannot start. */
  async start(): Promise<void> {
    await this.pool();
  }

  /** Starts the worker threads (again, if one has died). Rejects where worker threads cannot start. */
  private async pool(): Promise<HostThread[]> {
    if (this.closed) throw new Error('the session host is closed');
    if (this.threads.length === this.workers && this.threads.every((t) => !t.failure)) return this.threads;
    this.starting ??= (async () => {
      try {
        const alive = this.threads.filter((t) => !t.failure);
        const fresh = await Promise.all(Array.from({ length: this.workers - alive.length }, () => WorkerRpc.start<HostRequest>(WORKER_ENTRY, 'the ONNX Runtime worker thread')));
        this.threads = [...alive, ...fresh];
        return this.threads;
      } finally {
        this.starting = null;
      }
    })();
    return this.starting;
  }

  /**
   * Converts a TF.js layers model (model.json's parsed JSON, the weight shards concatenated) to ONNX in a worker
   * thread. Rejects as exportOnnx throws; an UnsupportedLayerError keeps its name.
   */
  async convert(modelJson: object, weights: Uint8Array): Promise<Uint8Array> {
    const threads = await this.pool();
    const t = threads.reduce((a, b) => (b.load < a.load ? b : a));
    const reply = await t.request<{ onnx: Uint8Array }>({ type: 'convert', modelJson, weights });
    return reply.onnx;
  }

  /**
   * Opens an ONNX model in every worker; `transform` normalises RGB pixel input, and a model quantized on its pixel
   * grid opens to read the pixels as they are (pixel-input.ts).
   */
  async open(onnx: Uint8Array, opts: { transform?: PixelTransform } = {}): Promise<HostedSession> {
    const threads = await this.pool();
    type Opened = Extract<HostReply, { type: 'opened' }>;
    const opened = await Promise.allSettled(
      threads.map((t) => t.request<Opened>({ type: 'open', onnx, threads: this.intraOpThreads, transform: opts.transform ?? null })),
    );
    const failed = opened.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) {
      await Promise.all(opened.map((o, i) => (o.status === 'fulfilled' ? closeSession(threads[i]!, o.value.session) : null)));
      throw failed.reason;
    }
    const sessions = (opened as PromiseFulfilledResult<Opened>[]).map((o, i) => ({ thread: threads[i]!, session: o.value.session }));
    const first = (opened[0] as PromiseFulfilledResult<Opened>).value;
    return new PooledSession(sessions, first.provider, first.inputType, first.inputShape, first.outputShape);
  }

  /** Stops the worker threads; sessions opened in them stop working. May be called more than once. */
  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads;
    this.threads = [];
    await Promise.all(threads.map((t) => t.close()));
  }
}

class PooledSession implements HostedSession {
  private disposed = false;
  readonly parallelism: number;

  constructor(
    private readonly sessions: { thread: HostThread; session: number }[],
    readonly provider: string,
    readonly inputType: InputType,
    readonly inputShape: readonly number[],
    readonly outputShape: readonly number[],
  ) {
    this.parallelism = sessions.length;
  }

  get alive(): boolean {
    return this.sessions.every((s) => !s.thread.failure);
  }

  async run(input: Uint8Array | Float32Array, batch: number, opts: RunOptions = {}): Promise<Float32Array> {
    if (this.disposed) throw new Error('the ONNX Runtime session has been disposed');
    let best = this.sessions[0]!;
    for (const s of this.sessions) if (s.thread.load < best.thread.load) best = s;
    const movable = input.buffer instanceof ArrayBuffer;
    const whole = movable && input.byteOffset === 0 && input.byteLength === input.buffer.byteLength;
    // A buffer lent (giveBack) goes whole, whatever part of it the input views, and comes back with the output.
    const lent = movable && opts.giveBack !== undefined;
    const reply = await best.thread.request<{ output: Float32Array; input?: Uint8Array | Float32Array }>(
      { type: 'run', session: best.session, input, batch, giveBack: lent },
      lent || (whole && opts.transfer !== false) ? [input.buffer as ArrayBuffer] : [],
    );
    opts.giveBack?.(reply.input ?? input);
    return reply.output;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all(this.sessions.map((s) => closeSession(s.thread, s.session)));
  }
}

/**
 * Releases a session in its worker thread, as a request: the thread's close() then lets the release finish instead of
 * stopping the thread in the middle of it (a native call cut off mid-way aborts the process). A thread that has
 * failed or closed has released it already.
 */
async function closeSession(thread: HostThread, session: number): Promise<void> {
  await thread.request({ type: 'close', session }).catch(() => {});
}

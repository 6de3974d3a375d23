// Dynamic micro-batching in the manner of Triton's dynamic batcher: single inputs submitted by concurrent callers
// are queued and run together. A batch starts as soon as it is full (maxBatch inputs) or its oldest input has
// waited maxWaitMs, whichever comes first, and only while fewer than `concurrency` batches are running. An input
// that arrives to an idle batcher (nothing running, nothing queued) starts at once: waiting could only add
// latency. Inputs keep their arrival order, within a batch and from batch to batch.

/** What one input's caller learns besides its output. */
import type { ErrorCode } from '@graft/contract';
export interface BatchInfo {
  /** Inputs in the batch this input ran in. */
  size: number;
  /** Milliseconds from submission to the start of its batch. */
  queuedMs: number;
  /** Milliseconds the batch took to run. */
  runMs: number;
}

export interface Batched<O> {
  output: O;
  batch: BatchInfo;
}

/**
 * Runs a batch. Resolves with one entry per input, in order; an entry that is an Error fails that input alone.
 * A rejection fails every input of the batch.
 */
export type BatchRunner<I, O> = (inputs: I[]) => Promise<ReadonlyArray<O | Error>>;

export interface BatcherOptions {
  /** Largest batch (default 16). */
  maxBatch?: number;
  /** Longest time the oldest queued input waits for a fuller batch, in ms (default 3; 0: never wait). */
  maxWaitMs?: number;
  /** Batches that may run at the same time (default 1). */
  concurrency?: number;
  /** Called when a batch starts, with its size. */
  onBatch?(size: number): void;
  /** Clock in ms (default performance.now). */
  now?(): number;
}

interface Pending<I, O> {
  input: I;
  enqueuedAt: number;
  resolve(v: Batched<O>): void;
  reject(e: unknown): void;
}

export class BatcherClosedError extends Error {
  readonly code = 'BATCHER_CLOSED' satisfies ErrorCode;
  /** The server is shutting down: the same request elsewhere (or later) can succeed. */
  readonly permanent = false;
  constructor() {
    super('the batcher is closed');
    this.name = 'BatcherClosedError';
  }
}

export class DynamicBatcher<I, O> {
  readonly maxBatch: number;
  readonly maxWaitMs: number;
  readonly concurrency: number;
  private readonly queue: Pending<I, O>[] = [];
  private running = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;
  private closed = false;
  private readonly idle = new Set<() => void>();
  private readonly now: () => number;

  constructor(
    private readonly runner: BatchRunner<I, O>,
    private readonly opts: BatcherOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 16;
    this.maxWaitMs = opts.maxWaitMs ?? 3;
    this.concurrency = opts.concurrency ?? 1;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${this.maxBatch}`);
    if (!(this.maxWaitMs >= 0)) throw new RangeError(`maxWaitMs must be 0 or more, got ${this.maxWaitMs}`);
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new RangeError(`concurrency must be a positive integer, got ${this.concurrency}`);
    }
    this.now = opts.now ?? (() => performance.now());
  }

  /** Inputs waiting for a batch. */
  get queued(): number {
    return this.queue.length;
  }

  /** Batches running now. */
  get active(): number {
    return this.running;
  }

  /** Queues one input; resolves with its output once its batch has run. */
  submit(input: I): Promise<Batched<O>> {
    return this.submitAll([input])[0]!;
  }

  /**
   * Queues several inputs of one caller together (they stay adjacent, so they share batches where they fit);
   * one promise per input.
   */
  submitAll(inputs: readonly I[]): Promise<Batched<O>>[] {
    if (this.closed) return inputs.map(() => Promise.reject(new BatcherClosedError()));
    const idle = this.running === 0 && this.queue.length === 0;
    const at = this.now();
    const promises = inputs.map(
      (input) => new Promise<Batched<O>>((resolve, reject) => this.queue.push({ input, enqueuedAt: at, resolve, reject })),
    );
    this.pump(idle);
    return promises;
  }

  /** Resolves once nothing is queued or running. */
  drain(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.add(r));
  }

  /** Fails what is queued and refuses new inputs; batches already running finish. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearTimer();
    for (const p of this.queue.splice(0)) p.reject(new BatcherClosedError());
    this.notifyIdle();
  }

  private pump(arrivedIdle = false): void {
    while (this.queue.length > 0 && this.running < this.concurrency) {
      const full = this.queue.length >= this.maxBatch;
      const waited = this.now() - this.queue[0]!.enqueuedAt >= this.maxWaitMs;
      if (!(full || waited || arrivedIdle)) {
        this.schedule(this.queue[0]!.enqueuedAt + this.maxWaitMs);
        return;
      }
      arrivedIdle = false;
      this.start(this.queue.splice(0, this.maxBatch));
    }
    if (this.queue.length === 0) this.clearTimer();
  }

  private schedule(at: number): void {
    if (this.timer && this.timerAt <= at) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.pump();
    }, Math.max(0, at - this.now()));
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }

  private start(batch: Pending<I, O>[]): void {
    this.running++;
    const started = this.now();
    try {
      this.opts.onBatch?.(batch.length);
    } catch {
      // an observer's failure is not the batch's
    }
    let run: Promise<ReadonlyArray<O | Error>>;
    try {
      run = this.runner(batch.map((p) => p.input));
    } catch (err) {
      run = Promise.reject(err);
    }
    run
      .then(
        (outputs) => {
          const runMs = this.now() - started;
          if (!Array.isArray(outputs) || outputs.length !== batch.length) {
            const err = new Error(`the batch runner returned ${Array.isArray(outputs) ? outputs.length : 'no'} results for ${batch.length} inputs`);
            for (const p of batch) p.reject(err);
            return;
          }
          batch.forEach((p, i) => {
            const out = outputs[i] as O | Error;
            if (out instanceof Error) p.reject(out);
            else p.resolve({ output: out, batch: { size: batch.length, queuedMs: started - p.enqueuedAt, runMs } });
          });
        },
        (err) => {
          for (const p of batch) p.reject(err);
        },
      )
      .finally(() => {
        this.running--;
        this.pump();
        this.notifyIdle();
      });
  }

  private notifyIdle(): void {
    if (this.running > 0 || this.queue.length > 0) return;
    for (const r of this.idle) r();
    this.idle.clear();
  }
}

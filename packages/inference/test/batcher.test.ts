import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BatcherClosedError, DynamicBatcher } from '../src/batcher';

/** A promise with its resolve and reject exposed. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A runner that records each batch and holds it until the test releases it. */
function heldRunner() {
  const batches: { inputs: number[]; release(): void; fail(e: unknown): void }[] = [];
  const run = (inputs: number[]) => {
    const d = deferred<number[]>();
    batches.push({ inputs, release: () => d.resolve(inputs.map((x) => x * 10)), fail: d.reject });
    return d.promise;
  };
  return { batches, run };
}

const flush = () => vi.advanceTimersByTimeAsync(0);

describe('DynamicBatcher', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  const now = () => Date.now();

  it('runs an input that finds the batcher idle at once, without waiting for company', async () => {
    const r = heldRunner();
    const b = new DynamicBatcher(r.run, { maxBatch: 8, maxWaitMs: 1000, now });
    const p = b.submit(4);
    expect(r.batches.map((x) => x.inputs)).toEqual([[4]]);
    r.batches[0]!.release();
    await expect(p).resolves.toEqual({ output: 40, batch: { size: 1, queuedMs: 0, runMs: 0 } });
  });

  it('starts a full batch at once and a partial one only after the oldest input has waited maxWaitMs', async () => {
    const r = heldRunner();
    const b = new DynamicBatcher(r.run, { maxBatch: 4, maxWaitMs: 50, concurrency: 2, now });
    b.submit(0); // idle: runs alone, and stays running
    expect(r.batches).toHaveLength(1);

    const full = [1, 2, 3, 4].map((x) => b.submit(x));
    expect(r.batches.map((x) => x.inputs)).toEqual([[0], [1, 2, 3, 4]]);
    r.batches[1]!.release();
    expect((await Promise.all(full)).map((x) => x.output)).toEqual([10, 20, 30, 40]);

    const partial = [5, 6].map((x) => b.submit(x));
    await vi.advanceTimersByTimeAsync(49);
    expect(r.batches).toHaveLength(2);
    expect(b.queued).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(r.batches.map((x) => x.inputs)).toEqual([[0], [1, 2, 3, 4], [5, 6]]);
    r.batches[2]!.release();
    const done = await Promise.all(partial);
    expect(done.map((x) => x.batch)).toEqual([
      { size: 2, queuedMs: 50, runMs: 0 },
      { size: 2, queuedMs: 50, runMs: 0 },
    ]);
    r.batches[0]!.release();
    await b.drain();
  });

  it('gathers what arrives while the runner is busy into the next batch, up to maxBatch', async () => {
    const r = heldRunner();
    const b = new DynamicBatcher(r.run, { maxBatch: 3, maxWaitMs: 5, now });
    const all = [b.submit(1)];
    await vi.advanceTimersByTimeAsync(2);
    all.push(...b.submitAll([2, 3]), b.submit(4), ...b.submitAll([5, 6]));
    await vi.advanceTimersByTimeAsync(10);
    expect(r.batches).toHaveLength(1); // one at a time: the others wait for the runner
    r.batches[0]!.release();
    await flush();
    expect(r.batches.map((x) => x.inputs)).toEqual([[1], [2, 3, 4]]);
    r.batches[1]!.release();
    await flush();
    expect(r.batches.map((x) => x.inputs)).toEqual([[1], [2, 3, 4], [5, 6]]);
    r.batches[2]!.release();
    const results = await Promise.all(all);
    expect(results.map((x) => x.output)).toEqual([10, 20, 30, 40, 50, 60]);
    expect(results.map((x) => x.batch.size)).toEqual([1, 3, 3, 3, 2, 2]);
    expect(results[1]!.batch.queuedMs).toBe(10);
  });

  it('routes each output to its caller, in order, across many concurrent callers', async () => {
    vi.useRealTimers();
    const sizes: number[] = [];
    const b = new DynamicBatcher<string, string>(
      async (inputs) => {
        await new Promise((r) => setTimeout(r, Math.random() * 3));
        return inputs.map((s) => s.toUpperCase());
      },
      { maxBatch: 5, maxWaitMs: 1, onBatch: (n) => sizes.push(n) },
    );
    const callers = Array.from({ length: 20 }, (_, c) =>
      (async () => {
        await new Promise((r) => setTimeout(r, Math.random() * 5));
        const inputs = Array.from({ length: 1 + (c % 4) }, (_, i) => `c${c}-i${i}`);
        const out = await Promise.all(b.submitAll(inputs));
        return { inputs, outputs: out.map((o) => o.output) };
      })(),
    );
    for (const { inputs, outputs } of await Promise.all(callers)) expect(outputs).toEqual(inputs.map((s) => s.toUpperCase()));
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(50);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(5);
  });

  it('fails only the input whose result is an error, and a whole batch when the runner throws', async () => {
    const b = new DynamicBatcher<number, number>(
      async (inputs) => {
        if (inputs.includes(99)) throw new Error('runner broke');
        return inputs.map((x) => (x < 0 ? new Error(`bad input ${x}`) : x + 1));
      },
      { maxBatch: 8, maxWaitMs: 0, now },
    );
    const mixed = b.submitAll([1, -2, 3]);
    await expect(mixed[0]).resolves.toMatchObject({ output: 2 });
    await expect(mixed[1]).rejects.toThrow('bad input -2');
    await expect(mixed[2]).resolves.toMatchObject({ output: 4 });

    const broken = b.submitAll([5, 99]);
    await expect(broken[0]).rejects.toThrow('runner broke');
    await expect(broken[1]).rejects.toThrow('runner broke');
    await expect(b.submit(7)).resolves.toMatchObject({ output: 8 });
  });

  it('rejects a runner answer of the wrong length for every input of the batch', async () => {
    const b = new DynamicBatcher<number, number>(async () => [1], { maxWaitMs: 0, now });
    const ps = b.submitAll([1, 2]);
    await expect(ps[0]).rejects.toThrow(/1 results for 2 inputs/);
    await expect(ps[1]).rejects.toThrow(/1 results for 2 inputs/);
  });

  it('rejects what is queued on close and refuses new inputs, letting a running batch finish', async () => {
    const r = heldRunner();
    const b = new DynamicBatcher(r.run, { maxBatch: 2, maxWaitMs: 10, now });
    const running = b.submit(1);
    const queued = b.submit(2);
    b.close();
    await expect(queued).rejects.toBeInstanceOf(BatcherClosedError);
    await expect(b.submit(3)).rejects.toBeInstanceOf(BatcherClosedError);
    r.batches[0]!.release();
    await expect(running).resolves.toMatchObject({ output: 10 });
    b.close();
  });

  it('checks its options', () => {
    const run = async (x: number[]) => x;
    expect(() => new DynamicBatcher(run, { maxBatch: 0 })).toThrow(RangeError);
    expect(() => new DynamicBatcher(run, { maxWaitMs: -1 })).toThrow(RangeError);
    expect(() => new DynamicBatcher(run, { concurrency: 1.5 })).toThrow(RangeError);
  });
});

import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeInto, pixelTransform } from '../src/image';
import { LentBuffers } from '../src/host';
import { LocalSessionHost } from '../src/local-host';
import { exportOnnx } from '../src/onnx-export';
import { createSession } from '../src/session';
import { SessionHost } from '../src/session-host';
import { randomizeWeights, saveToMemory, type SavedModel } from './helpers';

const SHAPE = [8, 8, 3];
const PER = 8 * 8 * 3;
let saved: SavedModel;
let unsupported: SavedModel;
let onnx: Uint8Array;
const hosts: { close(): Promise<void> }[] = [];

function pixels(batch: number, seed: number): Uint8Array {
  const p = new Uint8Array(batch * PER);
  for (let i = 0; i < p.length; i++) p[i] = (i * 31 + seed * 7) & 0xff;
  return p;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: SHAPE, filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 3, activation: 'softmax' }),
    ],
  });
  randomizeWeights(model, 3);
  saved = await saveToMemory(model);
  onnx = exportOnnx(saved.modelJson, saved.weights);
  model.dispose();
  const up = tf.sequential({ layers: [tf.layers.upSampling2d({ inputShape: SHAPE, size: [2, 2] }), tf.layers.flatten({})] });
  unsupported = await saveToMemory(up);
  up.dispose();
});
afterAll(async () => {
  await Promise.all(hosts.map((h) => h.close()));
});

/** What the model gives for RGB pixels normalised on this thread, by a session on this thread. */
async function reference(px: Uint8Array, batch: number, transform: ReturnType<typeof pixelTransform>): Promise<Float32Array> {
  const x = new Float32Array(px.length);
  normalizeInto(px, transform, x);
  const s = await createSession(onnx, { threads: 1 });
  try {
    return await s.run(x, batch);
  } finally {
    await s.dispose();
  }
}

describe('SessionHost', () => {
  it('runs sessions in worker threads, normalising pixel input there, with the results of an in-process session', async () => {
    const host = new SessionHost({ workers: 2, threads: 1 });
    hosts.push(host);
    const transform = pixelTransform({ channelOrder: 'bgr', mean: [103.9, 116.8, 123.7], std: [1, 1, 1] });
    const session = await host.open(onnx, { transform });
    expect(session.parallelism).toBe(2);
    expect(session.inputShape).toEqual(SHAPE);
    expect(session.outputShape).toEqual([3]);
    expect(session.alive).toBe(true);
    const inputs = [1, 2, 3, 4, 5, 6].map((seed) => pixels(1 + (seed % 3), seed));
    const expected = await Promise.all(inputs.map((px) => reference(px, px.length / PER, transform)));
    // Concurrent runs spread over both workers; each gets its own answer.
    const outputs = await Promise.all(inputs.map((px) => session.run(px.slice(), px.length / PER)));
    outputs.forEach((out, i) => {
      expect(out).toHaveLength(expected[i]!.length);
      out.forEach((v, j) => expect(v).toBeCloseTo(expected[i]![j]!, 6));
    });
    // Float input is passed through as the model input.
    const x = new Float32Array(PER).fill(0.25);
    const local = await createSession(onnx, { threads: 1 });
    const want = await local.run(x.slice(), 1);
    await local.dispose();
    // Without transfer the input is copied and stays usable here; by default its buffer moves to the worker.
    expect(Array.from(await session.run(x, 1, { transfer: false }))).toEqual(Array.from(want));
    expect(x.length).toBe(PER);
    expect(Array.from(await session.run(x, 1))).toEqual(Array.from(want));
    expect(x.length).toBe(0);
    await session.dispose();
    await session.dispose();
    await expect(session.run(pixels(1, 1), 1)).rejects.toThrow(/disposed/);
  });

  it('lends a whole buffer for a run and gives it back with the output, the pixels normalised anew each time', async () => {
    const host = new SessionHost({ workers: 1, threads: 1 });
    hosts.push(host);
    const transform = pixelTransform({ mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5] });
    const session = await host.open(onnx, { transform });
    // One buffer of 4 images, filled with batches of 3, 1 and 2 in turn (the worker's float input is reused from run
    // to run: a stale value from a larger batch would change an answer).
    let buffer = new Uint8Array(4 * PER).buffer;
    for (const [batch, seed] of [
      [3, 11],
      [1, 12],
      [2, 13],
    ] as const) {
      const px = pixels(batch, seed);
      const input = new Uint8Array(buffer, 0, batch * PER);
      input.set(px);
      const given: (Uint8Array | Float32Array)[] = [];
      const run = session.run(input, batch, { giveBack: (x) => given.push(x) });
      expect(buffer.byteLength).toBe(0); // the whole buffer went to the worker, though the input views part of it
      const out = await run;
      const want = await reference(px, batch, transform);
      out.forEach((v, j) => expect(v).toBeCloseTo(want[j]!, 6));
      expect(given).toHaveLength(1);
      expect(given[0]).toBeInstanceOf(Uint8Array);
      expect(given[0]!.byteOffset).toBe(0);
      expect(given[0]!.length).toBe(batch * PER);
      expect(given[0]!.buffer.byteLength).toBe(4 * PER);
      expect(Array.from(given[0]!)).toEqual(Array.from(px));
      buffer = given[0]!.buffer as ArrayBuffer;
    }
    // A failed run gives nothing back.
    const given: unknown[] = [];
    await expect(session.run(new Float32Array(5), 1, { giveBack: (x) => given.push(x) })).rejects.toThrow(/needs 192/);
    expect(given).toEqual([]);
  });

  it('converts TF.js models in a worker, keeping the UnsupportedLayerError name for what it cannot express', async () => {
    const host = new SessionHost({ workers: 1, threads: 1 });
    hosts.push(host);
    const converted = await host.convert(saved.modelJson, saved.weights);
    expect(Buffer.compare(Buffer.from(converted), Buffer.from(onnx))).toBe(0);
    const err = await host.convert(unsupported.modelJson, unsupported.weights).catch((e) => e);
    expect(err.name).toBe('UnsupportedLayerError');
    expect(err.message).toMatch(/UpSampling2D/);
  });

  it('releases a session in its worker thread before dispose() resolves, and close() right after waits for it', async () => {
    // Stopping a thread in the middle of ONNX Runtime's release (a native call) aborts the process: close() lets
    // requests in progress finish, so the release must be one.
    const host = new SessionHost({ workers: 2, threads: 1 });
    const session = await host.open(onnx);
    let released = false;
    const disposed = session.dispose().then(() => (released = true));
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(released).toBe(false); // waiting for both worker threads' answers
    await host.close();
    await disposed;
    expect(released).toBe(true);
    expect(session.alive).toBe(false);
  });

  it('rejects what cannot run, and stops its workers on close', async () => {
    const host = new SessionHost({ workers: 1, threads: 1 });
    await expect(host.open(new Uint8Array([1, 2, 3]))).rejects.toThrow();
    const session = await host.open(onnx);
    await expect(session.run(pixels(1, 1), 1)).rejects.toThrow(/float32 input/);
    await expect(session.run(new Float32Array(5), 1)).rejects.toThrow(/needs 192/);
    await host.close();
    await host.close();
    expect(session.alive).toBe(false);
    await expect(session.run(new Float32Array(PER), 1)).rejects.toThrow(/closed/);
    await expect(host.open(onnx)).rejects.toThrow(/closed/);
    expect(() => new SessionHost({ workers: 0, threads: 1 })).toThrow(RangeError);
  });
});

describe('LocalSessionHost', () => {
  it('serves the same interface on the calling thread', async () => {
    const host = new LocalSessionHost(1);
    const transform = pixelTransform({ mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5] });
    const session = await host.open(await host.convert(saved.modelJson, saved.weights), { transform });
    const px = pixels(2, 9);
    const expected = await reference(px, 2, transform);
    const given: (Uint8Array | Float32Array)[] = [];
    const out = await session.run(px, 2, { giveBack: (x) => given.push(x) });
    out.forEach((v, j) => expect(v).toBeCloseTo(expected[j]!, 6));
    expect(given).toEqual([px]);
    expect(given[0]).toBe(px);
    await session.dispose();
  });
});

describe('LentBuffers', () => {
  it('fills a buffer given back again, keeps at most as many as asked, and allocates where none is large enough', () => {
    const buffers = new LentBuffers(Float32Array, 2);
    const a = buffers.take(3, 8);
    expect(a.length).toBe(3);
    expect(a.buffer.byteLength).toBe(8 * 4);
    const [b, c] = [buffers.take(8, 8), buffers.take(2, 8)];
    [a, b, c].forEach((x) => buffers.giveBack(x));
    // Two kept (a's and b's; c's is dropped), the last kept first: b's buffer, then a's, then a new one.
    expect(buffers.take(5, 8).buffer).toBe(b.buffer);
    expect(buffers.take(8, 8).buffer).toBe(a.buffer);
    expect([a.buffer, b.buffer, c.buffer]).not.toContain(buffers.take(1, 8).buffer);
    // A kept buffer too small for what is asked is not used.
    buffers.giveBack(new Float32Array(4));
    const big = buffers.take(6, 6);
    expect(big.length).toBe(6);
    expect(big.buffer.byteLength).toBe(6 * 4);
  });
});

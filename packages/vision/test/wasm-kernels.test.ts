// The wasm training kernels against the cpu backend (the reference implementation of TensorFlow.js): each kernel
// on a grid of shapes, full gradients of a small network, and a few steps of fit() on wasm.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import {
  registerWasmTrainingKernels,
  wasmTrainingKernelsRegistered,
  WASM_TRAINING_KERNELS,
} from '@graft/vision/backend/wasm-kernels';
import { filterGradient } from '@graft/vision/backend/wasm-conv-grads';
import { asHeapBackend } from '@graft/vision/backend/wasm-heap';
import {
  type Case,
  convFilterCase,
  depthwiseFilterCase,
  geometries,
  maxAbsDiff,
  mismatches,
  outSize,
  type Pad,
  padLabel,
  randomValues,
  runCases,
} from './kernel-cases';

const TOL = 1e-4;

/** Runs the cases on cpu and on wasm and checks every output matches within TOL, with no tensor left behind. */
async function expectSameOnWasm(cases: Case[]): Promise<void> {
  const expected = await runCases('cpu', cases);
  await tf.setBackend('wasm');
  const before = tf.memory().numTensors;
  const actual = await runCases('wasm', cases);
  expect(tf.memory().numTensors).toBe(before);
  expect(mismatches(cases, actual, expected, TOL)).toEqual([]);
}

beforeAll(async () => {
  registerWasmTrainingKernels();
  expect(await tf.setBackend('wasm')).toBe(true);
});

afterAll(async () => {
  await tf.setBackend('wasm');
});

describe('registerWasmTrainingKernels', () => {
  it('registers every kernel for wasm and is idempotent', () => {
    expect(wasmTrainingKernelsRegistered()).toBe(true);
    const before = WASM_TRAINING_KERNELS.map((k) => tf.getKernel(k, 'wasm')?.kernelFunc);
    registerWasmTrainingKernels();
    const after = WASM_TRAINING_KERNELS.map((k) => tf.getKernel(k, 'wasm')?.kernelFunc);
    expect(after).toEqual(before);
    expect(before.every((f) => typeof f === 'function')).toBe(true);
  });
});

describe('convolution gradient kernels match the cpu backend', () => {
  /** Conv2DBackpropFilter over the grid; dy scaled so that dW is O(1). */
  /** Conv2DBackpropFilter over the grid. */
  const filterCases = (): Case[] => geometries().map((g, i) => convFilterCase(g, i));

  it('Conv2DBackpropFilter', async () => {
    const cases = filterCases();
    expect(cases.length).toBeGreaterThan(30);
    await expectSameOnWasm(cases);
  });

  it('Conv2DBackpropFilter computed by im2col and by convolution, each on the whole grid', async () => {
    const cases = filterCases();
    const expected = await runCases('cpu', cases);
    await tf.setBackend('wasm');
    const heap = asHeapBackend(tf.backend());
    const before = tf.memory().numTensors;
    const failures: string[] = [];
    for (const method of ['im2col', 'conv'] as const) {
      cases.forEach((c, i) => {
        const got = tf.tidy(() => {
          const x = tf.tensor4d(c.inputs.x.values, c.inputs.x.shape as [number, number, number, number]);
          const dy = tf.tensor4d(c.inputs.dy.values, c.inputs.dy.shape as [number, number, number, number]);
          const a = c.attrs as { strides: [number, number]; pad: Pad; filterShape: [number, number, number, number] };
          const info = tf.backend_util.computeConv2DInfo(x.shape, a.filterShape, a.strides, 1, a.pad);
          return filterGradient(x, dy, info, heap, { method }).dataSync() as Float32Array;
        });
        const d = maxAbsDiff(got, expected[i].values);
        if (!(d < TOL)) failures.push(`${method} ${c.label}: max |diff| ${d}`);
      });
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(failures).toEqual([]);
  });

  it('Conv2DBackpropInput', async () => {
    const cases: Case[] = geometries().map((g, i) => {
      const oh = outSize(g.h, g.k, g.s, g.pad, 1);
      const ow = outSize(g.w, g.k, g.s, g.pad, 2);
      return {
        label: `x[${g.n},${g.h},${g.w},${g.ci}] k${g.k} co${g.co} s${g.s} ${padLabel(g.pad)}`,
        kernel: 'Conv2DBackpropInput',
        inputs: {
          dy: { shape: [g.n, oh, ow, g.co], values: randomValues(g.n * oh * ow * g.co, 21 + i) },
          filter: {
            shape: [g.k, g.k, g.ci, g.co],
            values: randomValues(g.k * g.k * g.ci * g.co, 201 + i, 1 / Math.sqrt(g.k * g.k * g.co)),
          },
        },
        attrs: { strides: [g.s, g.s], pad: g.pad, dataFormat: 'NHWC', inputShape: [g.n, g.h, g.w, g.ci] },
      };
    });
    await expectSameOnWasm(cases);
  });

  it('Conv2DBackpropFilter and Conv2DBackpropInput with NCHW data', async () => {
    const [n, c, h, w, co, k] = [2, 3, 9, 7, 4, 3];
    const oh = 5;
    const ow = 4;
    const attrs = { strides: [2, 2], pad: 'same', dataFormat: 'NCHW' };
    await expectSameOnWasm([
      {
        label: 'filter NCHW',
        kernel: 'Conv2DBackpropFilter',
        inputs: {
          x: { shape: [n, c, h, w], values: randomValues(n * c * h * w, 5) },
          dy: { shape: [n, co, oh, ow], values: randomValues(n * co * oh * ow, 6, 0.2) },
        },
        attrs: { ...attrs, filterShape: [k, k, c, co] },
      },
      {
        label: 'input NCHW',
        kernel: 'Conv2DBackpropInput',
        inputs: {
          dy: { shape: [n, co, oh, ow], values: randomValues(n * co * oh * ow, 7) },
          filter: { shape: [k, k, c, co], values: randomValues(k * k * c * co, 8, 0.2) },
        },
        attrs: { ...attrs, inputShape: [n, c, h, w] },
      },
    ]);
  });

  for (const multiplier of [1, 2]) {
    it(`DepthwiseConv2dNativeBackpropFilter, channel multiplier ${multiplier}`, async () => {
      const cases = geometries().map((g, i) => depthwiseFilterCase(g, i, multiplier));
      await expectSameOnWasm(cases);
    });

    it(`DepthwiseConv2dNativeBackpropInput, channel multiplier ${multiplier}`, async () => {
      const cases: Case[] = geometries().map((g, i) => {
        const oh = outSize(g.h, g.k, g.s, g.pad, 1);
        const ow = outSize(g.w, g.k, g.s, g.pad, 2);
        const cm = g.ci * multiplier;
        return {
          label: `x[${g.n},${g.h},${g.w},${g.ci}] k${g.k} s${g.s} ${padLabel(g.pad)}`,
          kernel: 'DepthwiseConv2dNativeBackpropInput',
          inputs: {
            dy: { shape: [g.n, oh, ow, cm], values: randomValues(g.n * oh * ow * cm, 41 + i) },
            filter: {
              shape: [g.k, g.k, g.ci, multiplier],
              values: randomValues(g.k * g.k * cm, 401 + i, 1 / g.k),
            },
          },
          attrs: { strides: [g.s, g.s], dilations: [1, 1], pad: g.pad, inputShape: [g.n, g.h, g.w, g.ci] },
        };
      });
      await expectSameOnWasm(cases);
    });
  }

  it('Conv2DBackpropFilter gives the same result when its im2col is split into chunks', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend();
    const before = tf.memory().numTensors;
    const [whole, chunked] = tf.tidy(() => {
      const x = tf.tensor(randomValues(3 * 11 * 9 * 5, 121), [3, 11, 9, 5]) as tf.Tensor4D;
      const dy = tf.tensor(randomValues(3 * 6 * 5 * 4, 122, 0.1), [3, 6, 5, 4]) as tf.Tensor4D;
      const info = tf.backend_util.computeConv2DInfo(x.shape, [3, 3, 5, 4], 2, 1, 'same');
      const heap = asHeapBackend(backend);
      // 200 floats per chunk: 4 patch rows (of 45) per product, 23 products.
      return [filterGradient(x, dy, info, heap, { method: 'im2col' }), filterGradient(x, dy, info, heap, { method: 'im2col', chunkFloats: 200 })].map(
        (t) => t.dataSync() as Float32Array,
      );
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(whole.some((v) => v !== 0)).toBe(true);
    expect(maxAbsDiff(whole, chunked)).toBeLessThan(1e-5);
  });

  it('depthwise gradients with dilation 2 equal those of the zero-stuffed filter', async () => {
    // A 3x3 filter at dilation 2 is the 5x5 filter with zeros between its taps; the cpu backend computes the
    // latter at dilation 1. The filter gradient at dilation 2 is the 5x5 gradient at the even taps.
    const [n, h, w, c] = [2, 11, 10, 3];
    const x = randomValues(n * h * w * c, 51);
    const f3 = randomValues(9 * c, 52, 0.3);
    const f5 = new Float32Array(25 * c);
    for (let r = 0; r < 3; r++) for (let q = 0; q < 3; q++) for (let k = 0; k < c; k++) {
      f5[((2 * r) * 5 + 2 * q) * c + k] = f3[(r * 3 + q) * c + k];
    }
    for (const pad of ['same', 'valid'] as const) {
      const oh = pad === 'same' ? h : h - 4;
      const ow = pad === 'same' ? w : w - 4;
      const dy = randomValues(n * oh * ow * c, 53, 0.1);
      await tf.setBackend('cpu');
      const [gx5, gf5] = tf.tidy(() => {
        const attrs = { strides: [1, 1], dilations: [1, 1], pad };
        const dyT = tf.tensor(dy, [n, oh, ow, c]);
        return [
          tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy: dyT, filter: tf.tensor(f5, [5, 5, c, 1]) },
            { ...attrs, inputShape: [n, h, w, c] }) as tf.Tensor,
          tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x: tf.tensor(x, [n, h, w, c]), dy: dyT },
            { ...attrs, filterShape: [5, 5, c, 1] }) as tf.Tensor,
        ].map((t) => t.dataSync() as Float32Array);
      });
      await tf.setBackend('wasm');
      const before = tf.memory().numTensors;
      const [gx3, gf3] = tf.tidy(() => {
        const attrs = { strides: [1, 1], dilations: [2, 2], pad };
        const dyT = tf.tensor(dy, [n, oh, ow, c]);
        return [
          tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy: dyT, filter: tf.tensor(f3, [3, 3, c, 1]) },
            { ...attrs, inputShape: [n, h, w, c] }) as tf.Tensor,
          tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x: tf.tensor(x, [n, h, w, c]), dy: dyT },
            { ...attrs, filterShape: [3, 3, c, 1] }) as tf.Tensor,
        ].map((t) => t.dataSync() as Float32Array);
      });
      expect(tf.memory().numTensors).toBe(before);
      expect(maxAbsDiff(gx3, gx5)).toBeLessThan(TOL);
      const evenTaps = new Float32Array(9 * c);
      for (let r = 0; r < 3; r++) for (let q = 0; q < 3; q++) for (let k = 0; k < c; k++) {
        evenTaps[(r * 3 + q) * c + k] = gf5[((2 * r) * 5 + 2 * q) * c + k];
      }
      expect(maxAbsDiff(gf3, evenTaps)).toBeLessThan(TOL);
    }
  });
});

describe('MaxPoolGrad matches the cpu backend', () => {
  it('for pooling windows with and without overlap, strides and padding, ties included', async () => {
    const geometries: { shape: [number, number, number, number]; k: number; s: number; pad: 'same' | 'valid' }[] = [
      { shape: [2, 8, 8, 3], k: 2, s: 2, pad: 'valid' },
      { shape: [2, 9, 7, 4], k: 2, s: 2, pad: 'valid' },
      { shape: [1, 9, 7, 2], k: 3, s: 2, pad: 'same' },
      { shape: [2, 6, 6, 5], k: 3, s: 1, pad: 'same' },
      { shape: [1, 10, 10, 3], k: 3, s: 2, pad: 'valid' },
    ];
    const cases: Case[] = geometries.flatMap((g, i) =>
      [false, true].map((ties) => {
        const size = g.shape.reduce((a, b) => a * b, 1);
        // With ties, values are drawn from a few levels, so windows often hold several maxima.
        const values = ties ? randomValues(size, 900 + i).map((v) => Math.round(v * 2) / 2) : randomValues(size, 700 + i);
        const output = tf.tidy(() => tf.maxPool(tf.tensor4d(values, g.shape), g.k, g.s, g.pad).dataSync() as Float32Array);
        const outShape = tf.tidy(() => tf.maxPool(tf.zeros(g.shape) as tf.Tensor4D, g.k, g.s, g.pad).shape);
        return {
          label: `${g.shape} k${g.k} s${g.s} ${g.pad}${ties ? ' ties' : ''}`,
          kernel: 'MaxPoolGrad',
          inputs: {
            dy: { shape: outShape, values: randomValues(output.length, 800 + i) },
            input: { shape: g.shape, values },
            output: { shape: outShape, values: output },
          },
          attrs: { filterSize: g.k, strides: g.s, pad: g.pad },
        };
      }),
    );
    await expectSameOnWasm(cases);
  });
});

describe('matrix products match the cpu backend', () => {
  const mm = (label: string, aShape: number[], bShape: number[], transposeA: boolean, transposeB: boolean, i: number): Case => ({
    label,
    kernel: 'BatchMatMul',
    inputs: {
      a: { shape: aShape, values: randomValues(tf.util.sizeFromShape(aShape), 61 + i) },
      b: { shape: bShape, values: randomValues(tf.util.sizeFromShape(bShape), 71 + i, 0.1) },
    },
    attrs: { transposeA, transposeB },
  });

  it('BatchMatMul with transposes, batches and broadcasting', async () => {
    await expectSameOnWasm([
      mm('plain', [7, 5], [5, 3], false, false, 0),
      mm('transposeA', [40, 33], [40, 17], true, false, 1),
      mm('transposeB', [33, 40], [17, 40], false, true, 2),
      mm('both', [40, 33], [17, 40], true, true, 3),
      mm('batched small', [3, 4, 5], [3, 5, 6], false, false, 4),
      mm('batched large, transposeA', [3, 50, 40], [3, 50, 45], true, false, 5),
      mm('batched large, transposeB', [2, 2, 40, 50], [2, 2, 45, 50], false, true, 6),
      mm('right operand broadcast', [4, 30, 20], [20, 10], false, false, 7),
      mm('right operand broadcast, transposeA', [2, 3, 20, 30], [1, 20, 10], true, false, 8),
      mm('left operand broadcast', [40, 35], [3, 35, 40], false, false, 9),
    ]);
  });

  it('_FusedMatMul with transposes, bias and activation', async () => {
    const aVals = randomValues(30 * 20, 81);
    const bVals = randomValues(20 * 10, 82, 0.2);
    const biasVals = randomValues(10, 83);
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const before = tf.memory().numTensors;
      const out = tf.tidy(() =>
        tf.fused
          .matMul({
            a: tf.tensor(aVals, [1, 20, 30]),
            b: tf.tensor(bVals, [1, 10, 20]),
            transposeA: true,
            transposeB: true,
            bias: tf.tensor(biasVals, [10]),
            activation: 'relu',
          })
          .dataSync() as Float32Array,
      );
      expect(tf.memory().numTensors).toBe(before);
      return out;
    };
    const expected = await run('cpu');
    const actual = await run('wasm');
    expect(actual.some((v) => v > 0)).toBe(true);
    expect(maxAbsDiff(actual, expected)).toBeLessThan(TOL);
  });
});

describe('Sum, Mean, Cast and Identity match the cpu backend', () => {
  /** Runs fn on each backend and returns what it read back, checking nothing leaked. */
  async function onBoth<T extends tf.TensorContainer>(fn: () => T): Promise<{ cpu: T; wasm: T }> {
    const out: Record<string, T> = {};
    for (const backend of ['cpu', 'wasm']) {
      await tf.setBackend(backend);
      const before = tf.memory().numTensors;
      out[backend] = tf.tidy(fn) as T;
      expect(tf.memory().numTensors).toBe(before);
    }
    return { cpu: out.cpu, wasm: out.wasm };
  }

  it('Sum and Mean over every kind of axis set', async () => {
    const shape = [3, 4, 5, 6];
    const axesList: (number | number[])[] = [[0, 1, 2], [1, 2], [0], [1], [2], [0, 1], [-2, -3], [0, 1, 2, 3], [3], [0, 2], [1, 3]];
    const { cpu, wasm } = await onBoth(() => {
      const x = tf.tensor(randomValues(360, 131), shape);
      const xi = tf.tensor(Array.from({ length: 360 }, (_, i) => (i % 11) - 5), shape, 'int32');
      return axesList.flatMap((axes) =>
        [false, true].flatMap((keepDims) =>
          [tf.sum(x, axes, keepDims), tf.mean(x, axes, keepDims), tf.sum(xi, axes, keepDims)].map((y) => ({
            shape: y.shape,
            dtype: y.dtype,
            values: Array.from(y.dataSync() as ArrayLike<number>),
          })),
        ),
      );
    });
    expect(wasm.length).toBe(axesList.length * 6);
    wasm.forEach((r, i) => {
      expect(r.shape).toEqual(cpu[i].shape);
      expect(r.dtype).toEqual(cpu[i].dtype);
      expect(maxAbsDiff(Float32Array.from(r.values), Float32Array.from(cpu[i].values))).toBeLessThan(TOL);
    });
  });

  it('Cast between float32, int32 and bool', async () => {
    const values = [0, 0.3, -0.3, 1.7, -2.5, 3, -4, 0.0001, 1e6];
    const { cpu, wasm } = await onBoth(() => {
      const f = tf.tensor(values);
      const i = tf.tensor(values.map(Math.trunc), undefined, 'int32');
      const b = tf.tensor(values.map((v) => v > 0), undefined, 'bool');
      const pairs: [tf.Tensor, tf.DataType][] = [
        [f, 'int32'], [f, 'bool'], [f, 'float32'], [i, 'float32'], [i, 'bool'], [i, 'int32'], [b, 'float32'], [b, 'int32'],
      ];
      return pairs.map(([t, dtype]) => {
        const y = tf.cast(t, dtype);
        return { dtype: y.dtype, values: Array.from(y.dataSync() as ArrayLike<number>) };
      });
    });
    expect(wasm).toEqual(cpu);
  });

  it('Identity shares data safely: the clone outlives its source', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.tensor([1, 2, 3, 4], [2, 2]);
    const y = tf.clone(x);
    const z = tf.cast(x, 'float32');
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4]);
    expect(Array.from(z.dataSync())).toEqual([1, 2, 3, 4]);
    y.dispose();
    expect(Array.from(z.dataSync())).toEqual([1, 2, 3, 4]);
    z.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('Tile matches the cpu backend', () => {
  it('for float32, int32 and bool tensors of several ranks', async () => {
    const cases: [number[], number[]][] = [
      [[1, 1, 1, 6], [3, 4, 5, 1]],
      [[2, 1, 1, 3], [1, 3, 2, 1]],
      [[2, 3], [3, 1]],
      [[2, 3], [1, 4]],
      [[4], [3]],
      [[2, 3, 1, 2, 2], [2, 1, 3, 1, 2]],
      [[3, 2], [1, 1]],
      [[2, 2], [2, 0]],
    ];
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const before = tf.memory().numTensors;
      const out = tf.tidy(() =>
        cases.flatMap(([shape, reps], i) => {
          const size = tf.util.sizeFromShape(shape);
          const f = tf.tensor(randomValues(size, 111 + i), shape);
          const n = tf.tensor(Array.from({ length: size }, (_, j) => j * 7 - 3), shape, 'int32');
          const b = tf.tensor(Array.from({ length: size }, (_, j) => j % 3 === 0), shape, 'bool');
          return [f, n, b].map((t) => {
            const y = tf.tile(t, reps);
            return { shape: y.shape, values: Array.from(y.dataSync() as ArrayLike<number>) };
          });
        }),
      );
      expect(tf.memory().numTensors).toBe(before);
      return out;
    };
    const expected = await run('cpu');
    const actual = await run('wasm');
    expect(actual).toEqual(expected);
  });
});

describe('training on wasm', () => {
  /** Gradients of a conv -> depthwise (stride 2) -> conv 1x1 -> dense network's loss, on `backend`. */
  async function networkGrads(backend: string): Promise<Float32Array[]> {
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const grads = tf.tidy(() => {
      const x = tf.tensor(randomValues(2 * 13 * 13 * 3, 91), [2, 13, 13, 3]) as tf.Tensor4D;
      const w1 = tf.tensor(randomValues(3 * 3 * 3 * 6, 92, 0.4), [3, 3, 3, 6]) as tf.Tensor4D;
      const dw = tf.tensor(randomValues(3 * 3 * 6 * 2, 93, 0.4), [3, 3, 6, 2]) as tf.Tensor4D;
      const w2 = tf.tensor(randomValues(12 * 8, 94, 0.3), [1, 1, 12, 8]) as tf.Tensor4D;
      const wd = tf.tensor(randomValues(7 * 7 * 8 * 4, 95, 0.1), [7 * 7 * 8, 4]) as tf.Tensor2D;
      const bd = tf.tensor(randomValues(4, 96), [4]) as tf.Tensor1D;
      const labels = tf.oneHot(tf.tensor1d([1, 3], 'int32'), 4);
      const loss = (xi: tf.Tensor, a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor, e: tf.Tensor) => {
        let h = tf.relu(tf.conv2d(xi as tf.Tensor4D, a as tf.Tensor4D, 1, 'same'));
        h = tf.relu(tf.depthwiseConv2d(h, b as tf.Tensor4D, 2, 'same'));
        h = tf.relu(tf.conv2d(h, c as tf.Tensor4D, 1, 'valid'));
        const logits = tf.add(tf.matMul(tf.reshape(h, [2, -1]), d as tf.Tensor2D), e);
        return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
      };
      const gs = tf.grads(loss)([x, w1, dw, w2, wd, bd]);
      return gs.map((g) => g.dataSync() as Float32Array);
    });
    expect(tf.memory().numTensors).toBe(before);
    return grads;
  }

  it('gives the cpu backend gradients for a conv / depthwise / dense network', async () => {
    const expected = await networkGrads('cpu');
    const actual = await networkGrads('wasm');
    expect(actual.length).toBe(6);
    actual.forEach((g, i) => {
      expect(g.length).toBe(expected[i].length);
      expect(expected[i].some((v) => v !== 0)).toBe(true);
      expect(maxAbsDiff(g, expected[i])).toBeLessThan(TOL);
    });
  });

  it('fits a Conv2D + DepthwiseConv2D + Dense model: loss decreases, no tensors leak', async () => {
    await tf.setBackend('wasm');
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [12, 12, 3], filters: 8, kernelSize: 3, padding: 'same', activation: 'relu',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        tf.layers.depthwiseConv2d({
          kernelSize: 3, strides: 2, padding: 'same', activation: 'relu',
          depthwiseInitializer: tf.initializers.glorotUniform({ seed: 2 }),
        }),
        tf.layers.conv2d({
          filters: 8, kernelSize: 1, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
        }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
    const n = 16;
    const labels = Array.from({ length: n }, (_, i) => i % 2);
    // Class 1 images are brighter in their top half: learnable by the convolutions.
    const xVals = randomValues(n * 12 * 12 * 3, 97, 0.5);
    labels.forEach((y, i) => {
      if (y === 1) for (let j = 0; j < 6 * 12 * 3; j++) xVals[i * 432 + j] += 0.8;
    });
    const xs = tf.tensor(xVals, [n, 12, 12, 3]);
    const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), 2);

    await model.fit(xs, ys, { epochs: 1, batchSize: 8, shuffle: false }); // burn-in
    const before = tf.memory().numTensors;
    const history = await model.fit(xs, ys, { epochs: 8, batchSize: 8, shuffle: false });
    expect(tf.memory().numTensors).toBe(before);
    const losses = history.history.loss as number[];
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] * 0.8);

    tf.dispose([xs, ys]);
    model.dispose();
  });
});

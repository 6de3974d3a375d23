// The webgpu weight-gradient kernels (src/backend/webgpu-kernels.ts) against the cpu backend (the reference
// implementation of TensorFlow.js): the per-tap sums on the whole grid of convolution geometries, the registered
// kernels on layers large enough to take them, and the gradients of a small network. Runs where a WebGPU adapter
// exists (a GPU, or lavapipe on the CPU); skipped with the reason printed elsewhere.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import {
  convFilterGradient,
  depthwiseFilterGradient,
  filterGradMethod,
  MIN_ROWS_FOR_TAPS,
  registerWebGpuTrainingKernels,
  webGpuTrainingKernelsRegistered,
  WEBGPU_TRAINING_KERNELS,
} from '../src/backend/webgpu-kernels';
import {
  type Case,
  convFilterCase,
  depthwiseFilterCase,
  geometries,
  maxAbsDiff,
  mismatches,
  type Output,
  runCases,
} from './kernel-cases';
import { startWebGpuForTest } from './webgpu';

const TOL = 1e-4;
const unavailable = await startWebGpuForTest();

/** Runs the cases through fn (the tap sums, called directly) on webgpu, reading outputs asynchronously. */
async function runTaps(cases: Case[], fn: typeof convFilterGradient): Promise<Output[]> {
  await tf.setBackend('webgpu');
  const outs: Output[] = [];
  for (const c of cases) {
    const out = tf.tidy(() => {
      const x = tf.tensor4d(c.inputs.x.values, c.inputs.x.shape as [number, number, number, number]);
      const dy = tf.tensor4d(c.inputs.dy.values, c.inputs.dy.shape as [number, number, number, number]);
      const a = c.attrs as { strides: [number, number]; dilations?: [number, number]; pad: 'same'; filterShape: [number, number, number, number] };
      const depthwise = c.kernel === 'DepthwiseConv2dNativeBackpropFilter';
      const info = tf.backend_util.computeConv2DInfo(x.shape, a.filterShape, a.strides, a.dilations ?? 1, a.pad, undefined, depthwise);
      return fn(x, dy, info);
    });
    outs.push({ shape: out.shape, values: (await out.data()) as Float32Array });
    out.dispose();
  }
  return outs;
}

/** The expected outputs on cpu, then the actual ones on webgpu with no tensor left behind. */
async function compare(cases: Case[], actualOf: (cases: Case[]) => Promise<Output[]>): Promise<string[]> {
  const expected = await runCases('cpu', cases);
  await tf.setBackend('webgpu');
  const before = tf.memory().numTensors;
  const actual = await actualOf(cases);
  expect(tf.memory().numTensors).toBe(before);
  return mismatches(cases, actual, expected, TOL);
}

afterAll(async () => {
  if (!unavailable) await tf.setBackend('webgpu');
});

describe.skipIf(unavailable)('webgpu weight-gradient kernels match the cpu backend', () => {
  beforeAll(() => {
    expect(webGpuTrainingKernelsRegistered()).toBe(true);
  });

  it('are registered by initBackend, idempotently', () => {
    const before = WEBGPU_TRAINING_KERNELS.map((k) => tf.getKernel(k, 'webgpu')?.kernelFunc);
    registerWebGpuTrainingKernels();
    expect(WEBGPU_TRAINING_KERNELS.map((k) => tf.getKernel(k, 'webgpu')?.kernelFunc)).toEqual(before);
  });

  it('Conv2DBackpropFilter as one matMul per filter tap, on the whole grid', async () => {
    const cases = geometries().map((g, i) => convFilterCase(g, i));
    expect(await compare(cases, (c) => runTaps(c, convFilterGradient))).toEqual([]);
  }, 300_000);

  for (const multiplier of [1, 2]) {
    it(`DepthwiseConv2dNativeBackpropFilter as sums per filter tap, channel multiplier ${multiplier}`, async () => {
      const cases = geometries().map((g, i) => depthwiseFilterCase(g, i, multiplier));
      expect(await compare(cases, (c) => runTaps(c, depthwiseFilterGradient))).toEqual([]);
    }, 300_000);
  }

  it('DepthwiseConv2dNativeBackpropFilter with dilation 2 equals the 5x5 filter gradient at every other tap', async () => {
    // TensorFlow.js has no reference for dilated depthwise filter gradients (its gradient refuses dilation > 1):
    // a 3x3 filter at dilation 2 reads the pixels of a 5x5 filter at taps 0, 2 and 4 on each axis.
    for (const [m, pad] of [[1, 'same'], [2, 'valid']] as const) {
      const g = { n: 2, h: 9, w: 11, ci: 3, co: 3, k: 3, s: 1, pad };
      const dilated = depthwiseFilterCase(g, 1, m, 2);
      const wide = depthwiseFilterCase({ ...g, k: 5 }, 1, m, 1);
      wide.inputs.dy = dilated.inputs.dy;
      const [a, b] = await runTaps([dilated, wide], depthwiseFilterGradient);
      const every2nd = tf.tidy(() => tf.stridedSlice(tf.tensor(b!.values, b!.shape), [0, 0, 0, 0], [5, 5, 3, m], [2, 2, 1, 1]));
      const want = (await every2nd.data()) as Float32Array;
      every2nd.dispose();
      expect(a!.shape).toEqual([3, 3, 3, m]);
      expect(maxAbsDiff(a!.values, want)).toBeLessThan(TOL);
    }
  });

  it('the registered kernels, on layers with enough pixels to take the taps and on smaller ones', async () => {
    // 1 x 128 x 128 output pixels reach MIN_ROWS_FOR_TAPS with a few channels; 12 x 12 stays on the stock kernel.
    const big = { n: 1, h: 128, w: 128, ci: 3, co: 4, k: 3, s: 1, pad: 'same' as const };
    const small = { n: 2, h: 12, w: 12, ci: 4, co: 4, k: 3, s: 1, pad: 'same' as const };
    const method = (g: typeof big) => filterGradMethod(
      tf.backend_util.computeConv2DInfo([g.n, g.h, g.w, g.ci], [g.k, g.k, g.ci, g.co], g.s, 1, g.pad),
    );
    expect(MIN_ROWS_FOR_TAPS).toBeLessThanOrEqual(big.n * big.h * big.w);
    expect([method(big), method(small)]).toEqual(['taps', 'stock']);
    const cases = [
      convFilterCase(big, 1),
      convFilterCase({ ...big, k: 1, co: 8 }, 2),
      convFilterCase({ ...big, h: 256, s: 2 }, 3),
      convFilterCase(small, 4),
      depthwiseFilterCase(big, 5, 1),
      depthwiseFilterCase({ ...big, h: 256, s: 2 }, 6, 1),
      depthwiseFilterCase(small, 7, 1),
    ];
    expect(await compare(cases, (c) => runCases('webgpu', c))).toEqual([]);
  }, 300_000);
});

describe.runIf(unavailable)('webgpu kernels without an adapter', () => {
  it('are not tested here, for the reason printed', () => {
    expect(unavailable).toMatch(/webgpu/i);
  });
});

// Kernel calls described by plain arrays, so that one call runs on two backends and the outputs can be compared:
// the convolution geometries and gradient cases shared by the wasm and webgpu kernel tests.
import * as tf from '@tensorflow/tfjs';
import { randomInput } from '../../../test/support/random';

/** Deterministic uniform values in [-scale, scale). */
export const randomValues = (size: number, seed: number, scale = 1): Float32Array => randomInput(size, seed, -scale, scale);

/** A kernel call described by plain arrays, so that it can run on either backend. */
export interface Case {
  label: string;
  kernel: string;
  inputs: Record<string, { shape: number[]; values: Float32Array }>;
  attrs: tf.NamedAttrMap;
}

export interface Output {
  shape: number[];
  values: Float32Array;
}

/** Runs every case on `backend` and returns the outputs, read asynchronously (the webgpu backend has no other way). */
export async function runCases(backend: string, cases: Case[]): Promise<Output[]> {
  await tf.setBackend(backend);
  const outs: Output[] = [];
  for (const c of cases) {
    const out = tf.tidy(() => {
      const inputs: Record<string, tf.Tensor> = {};
      for (const [k, v] of Object.entries(c.inputs)) inputs[k] = tf.tensor(v.values, v.shape);
      return tf.engine().runKernel(c.kernel, inputs, c.attrs) as tf.Tensor;
    });
    outs.push({ shape: out.shape, values: (await out.data()) as Float32Array });
    out.dispose();
  }
  return outs;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The labels of the cases whose output differs from the expected one in shape or by tol or more. */
export function mismatches(cases: Case[], actual: Output[], expected: Output[], tol: number): string[] {
  const failures: string[] = [];
  cases.forEach((c, i) => {
    if (!tf.util.arraysEqual(actual[i].shape, expected[i].shape)) {
      failures.push(`${c.label}: shape ${actual[i].shape} vs ${expected[i].shape}`);
      return;
    }
    const d = maxAbsDiff(actual[i].values, expected[i].values);
    if (!(d < tol)) failures.push(`${c.label}: max |diff| ${d}`);
  });
  return failures;
}

export type Pad = 'same' | 'valid' | tf.backend_util.ExplicitPadding;

export interface Geometry {
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  k: number;
  s: number;
  pad: Pad;
}

/** The convolution geometries tested: batch 1-3, sizes 5-17, channels 1-8, filters 1/3/5, strides 1/2, pads. */
export function geometries(): Geometry[] {
  const out: Geometry[] = [];
  const sizes = [5, 6, 9, 12, 17];
  const chans = [1, 3, 4, 8];
  let i = 0;
  for (const k of [1, 3, 5]) {
    for (const s of [1, 2]) {
      for (const pad of ['same', 'valid'] as const) {
        for (let rep = 0; rep < 3; rep++, i++) {
          const h = sizes[(i * 3 + rep) % sizes.length];
          const w = sizes[(i * 7 + 2 * rep + 1) % sizes.length];
          if (pad === 'valid' && (h < k || w < k)) continue;
          out.push({ n: 1 + (i % 3), h, w, ci: chans[i % 4], co: chans[(i + rep + 1) % 4], k, s, pad });
        }
      }
    }
  }
  // Explicit (asymmetric) padding, including pads as large as the filter.
  out.push({ n: 2, h: 7, w: 9, ci: 3, co: 5, k: 3, s: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] });
  out.push({ n: 1, h: 8, w: 6, ci: 2, co: 4, k: 3, s: 2, pad: [[0, 0], [2, 0], [3, 1], [0, 0]] });
  out.push({ n: 3, h: 5, w: 5, ci: 4, co: 2, k: 1, s: 1, pad: [[0, 0], [1, 1], [1, 1], [0, 0]] });
  return out;
}

export function outSize(inSize: number, k: number, s: number, pad: Pad, axis: 1 | 2): number {
  if (pad === 'same') return Math.ceil(inSize / s);
  if (pad === 'valid') return Math.ceil((inSize - k + 1) / s);
  return Math.floor((inSize + pad[axis][0] + pad[axis][1] - k) / s) + 1;
}

export function padLabel(pad: Pad): string {
  return typeof pad === 'string' ? pad : JSON.stringify(pad.slice(1, 3));
}

/** Conv2DBackpropFilter of geometry g; dy scaled so that dW is O(1). */
export function convFilterCase(g: Geometry, seed: number): Case {
  const oh = outSize(g.h, g.k, g.s, g.pad, 1);
  const ow = outSize(g.w, g.k, g.s, g.pad, 2);
  return {
    label: `x[${g.n},${g.h},${g.w},${g.ci}] k${g.k} co${g.co} s${g.s} ${padLabel(g.pad)}`,
    kernel: 'Conv2DBackpropFilter',
    inputs: {
      x: { shape: [g.n, g.h, g.w, g.ci], values: randomValues(g.n * g.h * g.w * g.ci, 11 + seed) },
      dy: {
        shape: [g.n, oh, ow, g.co],
        values: randomValues(g.n * oh * ow * g.co, 101 + seed, 1 / Math.sqrt(g.n * oh * ow)),
      },
    },
    attrs: { strides: [g.s, g.s], pad: g.pad, dataFormat: 'NHWC', filterShape: [g.k, g.k, g.ci, g.co] },
  };
}

/** DepthwiseConv2dNativeBackpropFilter of geometry g (its ci channels) with a channel multiplier and dilation. */
export function depthwiseFilterCase(g: Geometry, seed: number, multiplier: number, dilation = 1): Case {
  const ek = (g.k - 1) * dilation + 1;
  const oh = outSize(g.h, ek, g.s, g.pad, 1);
  const ow = outSize(g.w, ek, g.s, g.pad, 2);
  const cm = g.ci * multiplier;
  return {
    label: `x[${g.n},${g.h},${g.w},${g.ci}] k${g.k} m${multiplier} d${dilation} s${g.s} ${padLabel(g.pad)}`,
    kernel: 'DepthwiseConv2dNativeBackpropFilter',
    inputs: {
      x: { shape: [g.n, g.h, g.w, g.ci], values: randomValues(g.n * g.h * g.w * g.ci, 31 + seed) },
      dy: {
        shape: [g.n, oh, ow, cm],
        values: randomValues(g.n * oh * ow * cm, 301 + seed, 1 / Math.sqrt(g.n * oh * ow)),
      },
    },
    attrs: {
      strides: [g.s, g.s],
      dilations: [dilation, dilation],
      pad: g.pad,
      filterShape: [g.k, g.k, g.ci, multiplier],
    },
  };
}

// Graft's 'triangle' resize of decoded 8-bit RGB pixels: Pillow's BILINEAR filter (a triangle, centre-aligned, that
// widens with the reduction so that shrinking averages every input pixel; plain bilinear interpolation when
// enlarging), taps clamped to the image. The taps are computed here in float64 and rounded to Q14; the arithmetic
// runs in WebAssembly with SIMD (wasm/triangle.c, through pixel-wasm.ts), on the calling thread. Output is within one
// level of an exact float computation of the same filter.
import { withPixelKernels } from './pixel-wasm';

const Q = 14;
const ONE = 1 << Q;

/** The taps of one axis: output i reads `count[i]` inputs from `first[i]` with `weights[i * maxTaps + k]` (Q14). */
export interface AxisTaps {
  first: Int32Array;
  count: Int32Array;
  weights: Int16Array;
  maxTaps: number;
}

/** Pillow's BILINEAR taps from `inSize` samples to `outSize`, each output's weights rounded to sum to 1 in Q14. */
export function triangleTaps(inSize: number, outSize: number): AxisTaps {
  if (!Number.isInteger(inSize) || inSize < 1 || !Number.isInteger(outSize) || outSize < 1) {
    throw new RangeError(`sizes must be positive integers, got ${inSize} -> ${outSize}`);
  }
  const scale = inSize / outSize;
  const support = Math.max(1, scale);
  const maxTaps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int16Array(outSize * maxTaps);
  const w = new Float64Array(maxTaps);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(centre - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(centre + support + 0.5));
    let sum = 0;
    for (let i = lo; i < hi; i++) sum += w[i - lo] = Math.max(0, 1 - Math.abs((i - centre + 0.5) / support));
    first[o] = lo;
    count[o] = hi - lo;
    let total = 0;
    let largest = 0;
    for (let k = 0; k < hi - lo; k++) {
      const q = Math.round((w[k]! / sum) * ONE);
      weights[o * maxTaps + k] = q;
      total += q;
      if (q > weights[o * maxTaps + largest]!) largest = k;
    }
    weights[o * maxTaps + largest]! += ONE - total;
  }
  return { first, count, weights, maxTaps };
}

/** Taps of recent size pairs (images of a dataset come in a few sizes). */
const tapCache = new Map<string, AxisTaps>();
const TAP_CACHE_ENTRIES = 256;

function cachedTaps(inSize: number, outSize: number): AxisTaps {
  const key = `${inSize}:${outSize}`;
  let taps = tapCache.get(key);
  if (!taps) {
    if (tapCache.size >= TAP_CACHE_ENTRIES) tapCache.clear();
    tapCache.set(key, (taps = triangleTaps(inSize, outSize)));
  }
  return taps;
}

/** `src` (width x height x 3 bytes, row-major) resized to `outWidth` x `outHeight` x 3 with the triangle filter. */
export function triangleResize(src: Uint8Array, width: number, height: number, outWidth: number, outHeight = outWidth): Uint8Array {
  if (src.length !== width * height * 3) throw new RangeError(`expected ${width}x${height}x3 = ${width * height * 3} bytes, got ${src.length}`);
  const ty = cachedTaps(height, outHeight);
  const tx = cachedTaps(width, outWidth);
  return withPixelKernels((k, scratch) => {
    const srcAt = scratch.take(src.length);
    const midAt = scratch.take((width * 3 * outHeight + 3 * tx.maxTaps + 8) * 2); // spare int16s: columns reads past the last pixel
    const outBytes = outWidth * outHeight * 3;
    const outAt = scratch.take(outBytes + 1); // one spare byte (columns writes one past each pixel)
    const columnWeightsAt = scratch.take(outWidth * tx.maxTaps * 16);
    const yAt = [scratch.take(outHeight * 4), scratch.take(outHeight * 4), scratch.take(ty.weights.byteLength)] as const;
    const xAt = [scratch.take(outWidth * 4), scratch.take(outWidth * 4), scratch.take(tx.weights.byteLength)] as const;
    const buffer = scratch.ready();
    new Uint8Array(buffer, srcAt, src.length).set(src);
    for (const [at, t] of [
      [yAt, ty],
      [xAt, tx],
    ] as const) {
      new Int32Array(buffer, at[0], t.first.length).set(t.first);
      new Int32Array(buffer, at[1], t.count.length).set(t.count);
      new Int16Array(buffer, at[2], t.weights.length).set(t.weights);
    }
    k.rows(srcAt, width, midAt, outHeight, yAt[0], yAt[1], yAt[2], ty.maxTaps);
    k.columns(midAt, width, outAt, outWidth, outHeight, xAt[0], xAt[1], xAt[2], tx.maxTaps, columnWeightsAt);
    return new Uint8Array(buffer, outAt, outBytes).slice();
  });
}

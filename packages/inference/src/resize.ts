// Graft's 'triangle' resize of decoded 8-bit RGB pixels: Pillow's BILINEAR filter (a triangle, centre-aligned, that
// widens with the reduction so that shrinking averages every input pixel; plain bilinear interpolation when
// enlarging), taps clamped to the image. The taps are computed here in float64 and rounded to Q14; the arithmetic
// runs in WebAssembly with SIMD (resize/triangle.c, built by scripts/build-wasm.sh), on the calling thread, one
// instance per thread. Output is within one level of an exact float computation of the same filter.
import { readFileSync } from 'node:fs';

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

interface Kernel {
  memory: WebAssembly.Memory;
  heapBase: number;
  rows(src: number, width: number, mid: number, outHeight: number, first: number, count: number, weights: number, maxTaps: number, acc: number): void;
  columns(mid: number, width: number, out: number, outWidth: number, height: number, first: number, count: number, weights: number, maxTaps: number): void;
}

let module: WebAssembly.Module | null = null;
let kernel: Kernel | null = null;
/**
 * Memory an instance keeps between calls (WebAssembly memory never shrinks): after an image that needed more (a
 * very long, thin one), the instance is dropped and the next call starts a fresh one.
 */
const RETAINED_BYTES = 64 * 1024 * 1024;

function loadKernel(): Kernel {
  if (kernel) return kernel;
  module ??= new WebAssembly.Module(readFileSync(new URL('./resize/triangle.wasm', import.meta.url)));
  const e = new WebAssembly.Instance(module, {}).exports as Record<string, unknown>;
  kernel = {
    memory: e.memory as WebAssembly.Memory,
    heapBase: (e.__heap_base as WebAssembly.Global).value as number,
    rows: e.rows as Kernel['rows'],
    columns: e.columns as Kernel['columns'],
  };
  return kernel;
}

/** Bytes of WebAssembly memory the resize of this thread holds now. */
export function triangleMemoryBytes(): number {
  return kernel?.memory.buffer.byteLength ?? 0;
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
  const k = loadKernel();
  const ty = cachedTaps(height, outHeight);
  const tx = cachedTaps(width, outWidth);
  let end = (k.heapBase + 15) & ~15;
  const take = (bytes: number) => {
    const at = end;
    end = (end + bytes + 15) & ~15;
    return at;
  };
  const srcAt = take(src.length);
  const midAt = take(width * 3 * outHeight * 2 + 2); // one spare int16 (columns reads one past each pixel)
  const outBytes = outWidth * outHeight * 3;
  const outAt = take(outBytes + 1); // one spare byte (columns writes one past each pixel)
  const accAt = take(width * 3 * 4);
  const yAt = [take(outHeight * 4), take(outHeight * 4), take(ty.weights.byteLength)] as const;
  const xAt = [take(outWidth * 4), take(outWidth * 4), take(tx.weights.byteLength)] as const;
  if (end > k.memory.buffer.byteLength) k.memory.grow(Math.ceil((end - k.memory.buffer.byteLength) / 65536));
  const buffer = k.memory.buffer;
  new Uint8Array(buffer, srcAt, src.length).set(src);
  for (const [at, t] of [
    [yAt, ty],
    [xAt, tx],
  ] as const) {
    new Int32Array(buffer, at[0], t.first.length).set(t.first);
    new Int32Array(buffer, at[1], t.count.length).set(t.count);
    new Int16Array(buffer, at[2], t.weights.length).set(t.weights);
  }
  k.rows(srcAt, width, midAt, outHeight, yAt[0], yAt[1], yAt[2], ty.maxTaps, accAt);
  k.columns(midAt, width, outAt, outWidth, outHeight, xAt[0], xAt[1], xAt[2], tx.maxTaps);
  const out = new Uint8Array(buffer, outAt, outBytes).slice();
  if (buffer.byteLength > RETAINED_BYTES) kernel = null;
  return out;
}

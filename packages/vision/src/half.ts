// IEEE 754 half precision (float16) for values kept in memory at half the bytes: the cached maps that fine-tuning
// reads (features.ts). Encoding rounds to the nearest half, ties to even, as a float32 -> float16 conversion in
// hardware does; decoding is exact (every half is a float32). Both run in WebAssembly with SIMD (@graft/inference's
// wasm/half.c), on the calling thread: a 9x9x768 map takes about a third of the time of a JavaScript loop.
import { withPixelKernels } from '@graft/inference/pixel-wasm';

/** `values` as float16, each rounded to the nearest. */
export function toHalf(values: Float32Array): Uint16Array {
  const n = values.length;
  const out = new Uint16Array(n);
  withPixelKernels((k, scratch) => {
    const src = scratch.take(n * 4);
    const dst = scratch.take(n * 2);
    const buffer = scratch.ready();
    new Float32Array(buffer, src, n).set(values);
    k.to_half(src, dst, n);
    out.set(new Uint16Array(buffer, dst, n));
  });
  return out;
}

/** Writes the float32 value of each float16 of `halves` into `out` from `offset`. */
export function fromHalf(halves: Uint16Array, out: Float32Array, offset = 0): void {
  const n = halves.length;
  if (offset < 0 || offset + n > out.length) throw new RangeError(`${n} values do not fit in ${out.length} from ${offset}`);
  withPixelKernels((k, scratch) => {
    const src = scratch.take(n * 2);
    const dst = scratch.take(n * 4);
    const buffer = scratch.ready();
    new Uint16Array(buffer, src, n).set(halves);
    k.from_half(src, dst, n);
    out.set(new Float32Array(buffer, dst, n), offset);
  });
}

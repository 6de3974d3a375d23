// IEEE 754 half precision (float16) for values kept in memory at half the bytes: the cached maps that fine-tuning
// reads (features.ts). Encoding rounds to the nearest half, ties to even, as a float32 -> float16 conversion in
// hardware does; decoding is exact (every half is a float32). Both run in WebAssembly with SIMD (@graft/inference's
// wasm/half.c), on the calling thread: a 9x9x768 map encodes in 0.08 ms (0.04 of it the conversion, the rest copies
// in and out of WebAssembly memory) and decodes in 0.025 (a JavaScript loop took 0.26 and 0.23).
import { withPixelKernels } from '@graft/inference/pixel-wasm';

type Values = Float32Array | Uint16Array;
const bytesOf = (v: Values, from = 0, count = v.length) => new Uint8Array(v.buffer, v.byteOffset + from * v.BYTES_PER_ELEMENT, count * v.BYTES_PER_ELEMENT);

/** Runs a conversion of half.c over `input` in this thread's WebAssembly memory, into `out` from `offset`. */
function convert(kernel: 'to_half' | 'from_half', input: Values, out: Values, offset: number): void {
  const n = input.length;
  if (offset < 0 || offset + n > out.length) throw new RangeError(`${n} values do not fit in ${out.length} from ${offset}`);
  withPixelKernels((k, scratch) => {
    const src = scratch.take(input.byteLength);
    const dst = scratch.take(n * out.BYTES_PER_ELEMENT);
    const buffer = scratch.ready();
    new Uint8Array(buffer, src, input.byteLength).set(bytesOf(input));
    k[kernel](src, dst, n);
    bytesOf(out, offset, n).set(new Uint8Array(buffer, dst, n * out.BYTES_PER_ELEMENT));
  });
}

/** `values` as float16, each rounded to the nearest. */
export function toHalf(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  convert('to_half', values, out, 0);
  return out;
}

/** Writes the float32 value of each float16 of `halves` into `out` from `offset`. */
export function fromHalf(halves: Uint16Array, out: Float32Array, offset = 0): void {
  convert('from_half', halves, out, offset);
}

// IEEE 754 half precision (float16) for values kept in memory at half the bytes: the cached maps that fine-tuning
// reads (features.ts). Encoding rounds to the nearest half, ties to even, as a float32 -> float16 conversion in
// hardware does; decoding is exact (every half is a float32).

/** float32 bits of every float16, built on first use (256 KB). */
let decodeTable: Float32Array | null = null;

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function table(): Float32Array {
  if (!decodeTable) {
    decodeTable = new Float32Array(0x10000);
    for (let h = 0; h < 0x10000; h++) decodeTable[h] = halfToFloat(h);
  }
  return decodeTable;
}

/** The float16 nearest to the float32 with these bits (ties to even; out of range: infinity; NaN stays NaN). */
function floatBitsToHalf(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias: 127 - 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // A subnormal half (or zero): the implicit bit joins the mantissa, shifted further right.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa moves to the next exponent, which is the right result (up to infinity).
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** `values` as float16, each rounded to the nearest. */
export function toHalf(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    const exp = (b >>> 23) & 0xff;
    // A normal half (what a network's activations are, but for their many zeros): rebias, round to nearest even in
    // one add.
    if (exp > 112 && exp < 143) out[i] = ((b >>> 16) & 0x8000) | (((b & 0x7fffffff) - 0x38000000 + 0xfff + ((b >>> 13) & 1)) >>> 13);
    else if ((b & 0x7fffffff) === 0) out[i] = (b >>> 16) & 0x8000;
    else out[i] = floatBitsToHalf(b);
  }
  return out;
}

/** Writes the float32 value of each float16 of `halves` into `out` from `offset`. */
export function fromHalf(halves: Uint16Array, out: Float32Array, offset = 0): void {
  const t = table();
  for (let i = 0; i < halves.length; i++) out[offset + i] = t[halves[i]!]!;
}

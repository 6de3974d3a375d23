// Deterministic pseudo-random numbers for tests (xorshift32): the same seed gives the same values on every machine.

/** Deterministic pseudo-random values in [lo, hi). */
export function randomInput(size: number, seed = 1, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = lo + ((s >>> 0) / 2 ** 32) * (hi - lo);
  }
  return out;
}

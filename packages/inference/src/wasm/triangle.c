// The arithmetic of Graft's 'triangle' resize (../resize.ts): a separable resize of 8-bit RGB images, with the taps
// of each output row and column computed by the caller as Q14 weights that sum to 16384. Rows first: each output row
// is a weighted sum of whole input rows, which are contiguous, eight values at a time; into 16-bit intermediates with
// 7 fractional bits. Then columns: each output pixel a weighted sum of neighbouring intermediate pixels, two taps
// of its three channels at a time. Built for wasm32 with SIMD by scripts/build-wasm.sh (npm run build:wasm).
#include <stdint.h>
#include <wasm_simd128.h>

#define Q 14

// Eight values of a row at a time, every tap's products summed in registers (the u8 x Q14 products and their sums
// are exact in 32 bits, so this is the same arithmetic as one tap at a time), the rest of the row one by one.
__attribute__((export_name("rows")))
void rows(const uint8_t *src, int32_t width, int16_t *mid, int32_t outHeight, const int32_t *first, const int32_t *count,
          const int16_t *weights, int32_t maxTaps) {
  const int32_t n = width * 3;
  const v128_t round = wasm_i32x4_splat(1 << (Q - 8));
  for (int32_t y = 0; y < outHeight; y++) {
    const int16_t *w = weights + y * maxTaps;
    const uint8_t *s = src + first[y] * n;
    const int32_t taps = count[y];
    int16_t *m = mid + y * n;
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
      v128_t lo = round, hi = round;
      for (int32_t k = 0; k < taps; k++) {
        const v128_t v = wasm_u16x8_load8x8(s + k * n + i), wk = wasm_i16x8_splat(w[k]);
        lo = wasm_i32x4_add(lo, wasm_i32x4_extmul_low_i16x8(v, wk));
        hi = wasm_i32x4_add(hi, wasm_i32x4_extmul_high_i16x8(v, wk));
      }
      wasm_v128_store(m + i, wasm_i16x8_narrow_i32x4(wasm_i32x4_shr(lo, Q - 7), wasm_i32x4_shr(hi, Q - 7)));
    }
    for (; i < n; i++) {
      int32_t acc = 1 << (Q - 8);
      for (int32_t k = 0; k < taps; k++) acc += (int32_t)s[k * n + i] * w[k];
      m[i] = (int16_t)(acc >> (Q - 7));
    }
  }
}

// Each output pixel's taps in pairs: one i32x4.dot_i16x8 multiplies two neighbouring input pixels' three channels
// by the pair's weights and adds each channel's two products, exactly as the one-tap-at-a-time sum does. `pairs`
// is scratch space for outWidth * ((maxTaps + 1) / 2) vectors of weights (w0 w1 w0 w1 w0 w1 0 0; an odd tap count
// ends with a pair whose second weight is 0). Reads up to 5 int16 past the last pixel of `mid` and writes one byte
// past each output pixel: `mid` needs 5 spare elements at the end and `out` one.
__attribute__((export_name("columns")))
void columns(const int16_t *mid, int32_t width, uint8_t *out, int32_t outWidth, int32_t height, const int32_t *first,
             const int32_t *count, const int16_t *weights, int32_t maxTaps, v128_t *pairs) {
  const int32_t maxPairs = (maxTaps + 1) / 2;
  for (int32_t x = 0; x < outWidth; x++) {
    const int16_t *w = weights + x * maxTaps;
    for (int32_t p = 0; p < maxPairs; p++) {
      const int16_t a = 2 * p < count[x] ? w[2 * p] : 0, b = 2 * p + 1 < count[x] ? w[2 * p + 1] : 0;
      pairs[x * maxPairs + p] = wasm_i16x8_make(a, b, a, b, a, b, 0, 0);
    }
  }
  const v128_t round = wasm_i32x4_splat(1 << (Q + 6));
  for (int32_t y = 0; y < height; y++) {
    const int16_t *m = mid + y * width * 3;
    uint8_t *o = out + y * outWidth * 3;
    for (int32_t x = 0; x < outWidth; x++) {
      const v128_t *wp = pairs + x * maxPairs;
      const int16_t *s = m + first[x] * 3;
      v128_t acc = round;
      for (int32_t k = 0; k < count[x]; k += 2, s += 6, wp++) {
        // R0 G0 B0 R1 G1 B1 .. .. as int16 -> R0 R1 G0 G1 B0 B1 .. ..
        const v128_t v = wasm_i8x16_shuffle(wasm_v128_load(s), wasm_v128_load(s), 0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, 12, 13, 14, 15);
        acc = wasm_i32x4_add(acc, wasm_i32x4_dot_i16x8(v, *wp));
      }
      acc = wasm_i32x4_shr(acc, Q + 7);
      const v128_t words = wasm_i16x8_narrow_i32x4(acc, acc);
      wasm_v128_store32_lane(o, wasm_u8x16_narrow_i16x8(words, words), 0);
      o += 3;
    }
  }
}

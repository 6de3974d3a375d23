// The arithmetic of Graft's 'triangle' resize (../resize.ts): a separable resize of 8-bit RGB images, with the taps
// of each output row and column computed by the caller as Q14 weights that sum to 16384. Rows first: each output row
// is a weighted sum of whole input rows, which are contiguous, so the compiler makes it SIMD; into 16-bit
// intermediates with 7 fractional bits. Then columns: each output pixel a weighted sum of neighbouring intermediate
// pixels, its three channels in one SIMD vector. Built for wasm32 with SIMD by scripts/build-wasm.sh (npm run build:wasm).
#include <stdint.h>
#include <wasm_simd128.h>

#define Q 14

// `acc` is scratch space for one row of width * 3 int32.
__attribute__((export_name("rows")))
void rows(const uint8_t *src, int32_t width, int16_t *mid, int32_t outHeight, const int32_t *first, const int32_t *count,
          const int16_t *weights, int32_t maxTaps, int32_t *acc) {
  const int32_t n = width * 3;
  for (int32_t y = 0; y < outHeight; y++) {
    const int16_t *w = weights + y * maxTaps;
    const uint8_t *s = src + first[y] * n;
    const int32_t w0 = w[0];
    for (int32_t i = 0; i < n; i++) acc[i] = (1 << (Q - 8)) + (int32_t)s[i] * w0;
    for (int32_t k = 1; k < count[y]; k++) {
      const uint8_t *sk = s + k * n;
      const int32_t wk = w[k];
      for (int32_t i = 0; i < n; i++) acc[i] += (int32_t)sk[i] * wk;
    }
    int16_t *m = mid + y * n;
    for (int32_t i = 0; i < n; i++) m[i] = (int16_t)(acc[i] >> (Q - 7));
  }
}

// Reads one int16 past each pixel and writes one byte past each: `mid` and `out` need one spare element at the end.
__attribute__((export_name("columns")))
void columns(const int16_t *mid, int32_t width, uint8_t *out, int32_t outWidth, int32_t height, const int32_t *first,
             const int32_t *count, const int16_t *weights, int32_t maxTaps) {
  const v128_t round = wasm_i32x4_splat(1 << (Q + 6));
  for (int32_t y = 0; y < height; y++) {
    const int16_t *m = mid + y * width * 3;
    uint8_t *o = out + y * outWidth * 3;
    for (int32_t x = 0; x < outWidth; x++) {
      const int16_t *w = weights + x * maxTaps;
      const int16_t *s = m + first[x] * 3;
      v128_t acc = round;
      for (int32_t k = 0; k < count[x]; k++, s += 3) acc = wasm_i32x4_add(acc, wasm_i32x4_mul(wasm_i32x4_load16x4(s), wasm_i32x4_splat(w[k])));
      acc = wasm_i32x4_shr(acc, Q + 7);
      const v128_t words = wasm_i16x8_narrow_i32x4(acc, acc);
      wasm_v128_store32_lane(o, wasm_u8x16_narrow_i16x8(words, words), 0);
      o += 3;
    }
  }
}

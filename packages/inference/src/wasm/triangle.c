// The arithmetic of Graft's 'triangle' resize (../resize.ts): a separable resize of 8-bit RGB images, with the taps
// of each output row and column computed by the caller as Q14 weights that sum to 16384. Rows first: each output row
// is a weighted sum of whole input rows, which are contiguous, sixteen values at a time; into 16-bit intermediates
// with 7 fractional bits. Then columns: each output pixel a weighted sum of neighbouring intermediate pixels, its
// three channels at a time. Built for wasm32 with SIMD by scripts/build-wasm.sh (npm run build:wasm).
#include <stdint.h>
#include <wasm_simd128.h>

#define Q 14

// Sixteen values of a row at a time, two taps (input rows) at once: their bytes interleaved, one i32x4.dot_i16x8
// multiplies each pair by the two taps' weights and adds them (an odd last tap pairs with weight 0), every tap's
// products summed in registers. The u8 x Q14 products and their sums are exact in 32 bits, so this is the same
// arithmetic as one tap at a time. The rest of the row one value at a time.
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
    for (; i + 16 <= n; i += 16) {
      v128_t a0 = round, a1 = round, a2 = round, a3 = round;
      for (int32_t k = 0; k < taps; k += 2) {
        const int32_t two = k + 1 < taps;
        const v128_t pair = wasm_i32x4_splat((int32_t)(uint16_t)w[k] | (two ? (int32_t)((uint32_t)(uint16_t)w[k + 1] << 16) : 0));
        const v128_t r0 = wasm_v128_load(s + k * n + i), r1 = wasm_v128_load(s + (k + two) * n + i);
        const v128_t lo = wasm_i8x16_shuffle(r0, r1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        const v128_t hi = wasm_i8x16_shuffle(r0, r1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        a0 = wasm_i32x4_add(a0, wasm_i32x4_dot_i16x8(wasm_u16x8_extend_low_u8x16(lo), pair));
        a1 = wasm_i32x4_add(a1, wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(lo), pair));
        a2 = wasm_i32x4_add(a2, wasm_i32x4_dot_i16x8(wasm_u16x8_extend_low_u8x16(hi), pair));
        a3 = wasm_i32x4_add(a3, wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(hi), pair));
      }
      wasm_v128_store(m + i, wasm_i16x8_narrow_i32x4(wasm_i32x4_shr(a0, Q - 7), wasm_i32x4_shr(a1, Q - 7)));
      wasm_v128_store(m + i + 8, wasm_i16x8_narrow_i32x4(wasm_i32x4_shr(a2, Q - 7), wasm_i32x4_shr(a3, Q - 7)));
    }
    for (; i < n; i++) {
      int32_t acc = 1 << (Q - 8);
      for (int32_t k = 0; k < taps; k++) acc += (int32_t)s[k * n + i] * w[k];
      m[i] = (int16_t)(acc >> (Q - 7));
    }
  }
}

// Output pixel x's three channels (and a fourth lane of no use) before rounding: `taps` input pixels from mid's pixel
// first[x] on, each read as four int32 (its three channels and the next pixel's first) and multiplied by its weight.
static inline __attribute__((always_inline)) v128_t pixelSum(const int16_t *m, int32_t first, const v128_t *w, int32_t taps) {
  const int16_t *s = m + first * 3;
  v128_t acc = wasm_i32x4_splat(1 << (Q + 6));
  for (int32_t k = 0; k < taps; k++, s += 3) acc = wasm_i32x4_add(acc, wasm_i32x4_mul(wasm_i32x4_load16x4(s), w[k]));
  return wasm_i32x4_shr(acc, Q + 7);
}

// The output rows, `taps` taps for each pixel. Inlined with taps a constant for the common widths, so that the loop
// over them unrolls.
static inline __attribute__((always_inline)) void columnsOf(const int16_t *mid, int32_t width, uint8_t *out,
                                                            int32_t outWidth, int32_t height, const int32_t *first,
                                                            const v128_t *w, int32_t taps) {
  for (int32_t y = 0; y < height; y++) {
    const int16_t *m = mid + y * width * 3;
    uint8_t *o = out + y * outWidth * 3;
    for (int32_t x = 0; x < outWidth; x++, o += 3) {
      const v128_t p = pixelSum(m, first[x], w + x * taps, taps);
      const v128_t words = wasm_i16x8_narrow_i32x4(p, p);
      wasm_v128_store32_lane(o, wasm_u8x16_narrow_i16x8(words, words), 0);
    }
  }
}

// Each output pixel is a weighted sum of neighbouring pixels of `mid`, its three channels at once, in the same exact
// integer arithmetic as one channel at a time. Every pixel takes as many taps as the widest (a pixel with fewer ends
// with taps of weight 0), so the loop over them has one length for the whole image: a length that varied from pixel
// to pixel (2 or 3 taps, shrinking 320 to 288) was a branch the processor mispredicted. `w` is scratch space for
// outWidth * maxTaps vectors of weights (the tap's weight in each lane). Reads up to 3 * maxTaps + 4 int16 past the
// first tap of the last pixel of `mid` (weighted by 0) and writes one byte past each output pixel: `mid` needs
// 3 * maxTaps + 8 spare elements at the end and `out` one byte.
__attribute__((export_name("columns")))
void columns(const int16_t *mid, int32_t width, uint8_t *out, int32_t outWidth, int32_t height, const int32_t *first,
             const int32_t *count, const int16_t *weights, int32_t maxTaps, v128_t *w) {
  int32_t taps = 1;
  for (int32_t x = 0; x < outWidth; x++) taps = count[x] > taps ? count[x] : taps;
  for (int32_t x = 0; x < outWidth; x++)
    for (int32_t k = 0; k < taps; k++) w[x * taps + k] = wasm_i32x4_splat(k < count[x] ? weights[x * maxTaps + k] : 0);
  if (taps == 2) columnsOf(mid, width, out, outWidth, height, first, w, 2);
  else if (taps == 3) columnsOf(mid, width, out, outWidth, height, first, w, 3);
  else if (taps == 4) columnsOf(mid, width, out, outWidth, height, first, w, 4);
  else columnsOf(mid, width, out, outWidth, height, first, w, taps);
}

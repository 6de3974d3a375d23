// The arithmetic of Graft's normalisation (normalizeInto in ../image.ts): out = (pixel - sub[c]) * mul[c] for each
// channel c of RGB pixels (red and blue swapped where bgr), computed in float64 and rounded to float32, as the
// JavaScript does, so both give the same bits. Four pixels (12 values) at a time with SIMD: their channels repeat with
// period 3, so three pairs of constants cover six float64x2 lanes. Reads up to 4 values past the last pixel of `src`:
// the caller leaves that much room after it.
#include <stdint.h>
#include <wasm_simd128.h>

// Normalises 12 values, held as int32 (floats = 0) or float32 (floats = 1) in three vectors, and stores them at o.
static inline void store12(float *o, v128_t a, v128_t b, v128_t c, int floats, const v128_t *sub, const v128_t *mul) {
  const v128_t v[3] = {a, b, c};
  for (int k = 0; k < 3; k++) {
    const v128_t high = wasm_i32x4_shuffle(v[k], v[k], 2, 3, 0, 1);
    v128_t pair[2] = {floats ? wasm_f64x2_promote_low_f32x4(v[k]) : wasm_f64x2_convert_low_i32x4(v[k]),
                      floats ? wasm_f64x2_promote_low_f32x4(high) : wasm_f64x2_convert_low_i32x4(high)};
    for (int h = 0; h < 2; h++) {
      const int j = (2 * k + h) % 3;
      pair[h] = wasm_f32x4_demote_f64x2_zero(wasm_f64x2_mul(wasm_f64x2_sub(pair[h], sub[j]), mul[j]));
    }
    wasm_v128_store(o + 4 * k, wasm_i32x4_shuffle(pair[0], pair[1], 0, 1, 4, 5));
  }
}

static void constants(const double *sub, const double *mul, v128_t *s, v128_t *m) {
  // Values 0..5 of a group have channels 0 1 | 2 0 | 1 2, and again for values 6..11.
  s[0] = wasm_f64x2_make(sub[0], sub[1]);
  s[1] = wasm_f64x2_make(sub[2], sub[0]);
  s[2] = wasm_f64x2_make(sub[1], sub[2]);
  m[0] = wasm_f64x2_make(mul[0], mul[1]);
  m[1] = wasm_f64x2_make(mul[2], mul[0]);
  m[2] = wasm_f64x2_make(mul[1], mul[2]);
}

static inline void tail(double r, double g, double b, float *o, const double *sub, const double *mul) {
  o[0] = (float)((r - sub[0]) * mul[0]);
  o[1] = (float)((g - sub[1]) * mul[1]);
  o[2] = (float)((b - sub[2]) * mul[2]);
}

// `norm`: sub[3] then mul[3], the transform with red and blue already in output order.
__attribute__((export_name("normalize_u8")))
void normalize_u8(const uint8_t *src, float *out, int32_t pixels, const double *norm, int32_t bgr) {
  v128_t sub[3], mul[3];
  constants(norm, norm + 3, sub, mul);
  int32_t p = 0;
  for (; p + 4 <= pixels; p += 4) {
    v128_t v = wasm_v128_load(src + p * 3);
    if (bgr) v = wasm_i8x16_shuffle(v, v, 2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9, 12, 13, 14, 15);
    const v128_t lo = wasm_u16x8_extend_low_u8x16(v), hi = wasm_u16x8_extend_high_u8x16(v);
    const v128_t a = wasm_u32x4_extend_low_u16x8(lo), b = wasm_u32x4_extend_high_u16x8(lo), c = wasm_u32x4_extend_low_u16x8(hi);
    store12(out + p * 3, a, b, c, 0, sub, mul);
  }
  for (; p < pixels; p++) {
    const uint8_t *s = src + p * 3;
    tail(s[bgr ? 2 : 0], s[1], s[bgr ? 0 : 2], out + p * 3, norm, norm + 3);
  }
}

// As normalize_u8 for float32 pixels; `out` may be `src`.
__attribute__((export_name("normalize_f32")))
void normalize_f32(const float *src, float *out, int32_t pixels, const double *norm, int32_t bgr) {
  v128_t sub[3], mul[3];
  constants(norm, norm + 3, sub, mul);
  int32_t p = 0;
  for (; p + 4 <= pixels; p += 4) {
    v128_t a = wasm_v128_load(src + p * 3), b = wasm_v128_load(src + p * 3 + 4), c = wasm_v128_load(src + p * 3 + 8);
    if (bgr) {
      // Values 0..11 in a b c become 2 1 0 5 | 4 3 8 7 | 6 11 10 9.
      const v128_t t = wasm_i32x4_shuffle(a, b, 4, 3, 3, 7);
      const v128_t nc = wasm_i32x4_shuffle(b, c, 2, 7, 6, 5);
      a = wasm_i32x4_shuffle(a, b, 2, 1, 0, 5);
      b = wasm_i32x4_shuffle(t, c, 0, 1, 4, 3);
      c = nc;
    }
    store12(out + p * 3, a, b, c, 1, sub, mul);
  }
  for (; p < pixels; p++) {
    const float *s = src + p * 3;
    tail(s[bgr ? 2 : 0], s[1], s[bgr ? 0 : 2], out + p * 3, norm, norm + 3);
  }
}

// The arithmetic of Graft's augmentation resampling (applyTransform in @graft/vision's augment.ts) for 8-bit RGB
// images: each output pixel (x, y) reads the input at (a*x + b*y + c, d*x + e*y + f), bilinearly or at the nearest
// pixel, coordinates outside the image mapped back by the fill mode. The same float64 operations in the same order as
// the JavaScript, rounded to float32 at the end, so both give the same bits. affine_u8_u8 writes bytes instead: each
// float32 value rounded to the nearest integer, halves to even, clamped to 0..255 (the pixels a model in int8 reads).
#include <stdint.h>

#define EPS 1e-6
// Each byte value as a double: a load from this table costs less than an int-to-float conversion, and a bilinear
// pixel reads twelve of them.
#define R4(i) i, i + 1, i + 2, i + 3
#define R16(i) R4(i), R4(i + 4), R4(i + 8), R4(i + 12)
#define R64(i) R16(i), R16(i + 16), R16(i + 32), R16(i + 48)
static const double D[256] = {R64(0), R64(64), R64(128), R64(192)};
enum { FILL_NEAREST = 0, FILL_REFLECT = 1, FILL_WRAP = 2, FILL_CONSTANT = 3 };

static int map_index(int i, int n, int mode) {
  if (i >= 0 && i < n) return i;
  if (mode == FILL_WRAP) return ((i % n) + n) % n;
  if (mode == FILL_REFLECT) {
    const int p = 2 * n;
    int k = ((i % p) + p) % p;
    if (k >= n) k = p - 1 - k;
    return k;
  }
  return i < 0 ? 0 : n - 1;
}

// An integral double (within 2^31) as an int: its value lands in the low mantissa bits of the sum with 1.5 * 2^52,
// without the range checks of a float-to-int conversion.
static inline int integral(double v) {
  const union { double d; int64_t i; } u = {v + 6755399441055744.0};
  return (int)u.i;
}

// JavaScript's Math.round: the nearest integer, halves up.
static double js_round(double x) {
  double r = __builtin_floor(x);
  if (x - r >= 0.5) r += 1;
  return r;
}

// Value i of the output: float32, or (bytes) the float32 value rounded half to even and clamped to 0..255. `clamp` 0
// where v is known to lie in 0..255 already (a bilinear sum of bytes: weights that are not negative and sum to 1
// within float64's rounding), which leaves out two comparisons V8 makes costly (a fifth of the resampling's time).
static inline __attribute__((always_inline)) void putValue(void *out, int i, double v, int bytes, int clamp) {
  const float f = (float)v;
  if (!bytes) {
    ((float *)out)[i] = f;
    return;
  }
  // Clamped, then rounded by adding 1.5 * 2^23: the sum's low mantissa bits are the integer, rounded half to even as
  // every float32 addition rounds (without a float-to-int conversion, whose range checks cost more than the rest).
  const float c = !clamp ? f : f < 0.0f ? 0.0f : f > 255.0f ? 255.0f : f;
  const union { float f; int32_t i; } r = {c + 12582912.0f};
  ((uint8_t *)out)[i] = (uint8_t)(r.i - 0x4B400000);
}

static inline __attribute__((always_inline)) void put(void *out, int i, double v, int bytes) { putValue(out, i, v, bytes, 1); }

// `m`: the six float64 coefficients a, b, c, d, e, f. `out`: height * width * 3 float32 values, or bytes.
static inline __attribute__((always_inline)) void affine(const uint8_t *src, int height, int width, void *out, const double *m, int mode, double cval, int bilinear, int bytes) {
  const double a = m[0], b = m[1], c = m[2], d = m[3], e = m[4], f = m[5];
  int o = 0;
  for (int y = 0; y < height; y++) {
    double xi = b * y + c;
    double yi = e * y + f;
    for (int x = 0; x < width; x++, xi += a, yi += d, o += 3) {
      if (mode == FILL_CONSTANT && (xi < -EPS || xi > width - 1 + EPS || yi < -EPS || yi > height - 1 + EPS)) {
        for (int k = 0; k < 3; k++) put(out, o + k, cval, bytes);
        continue;
      }
      if (!bilinear) {
        const int px = map_index(integral(js_round(xi)), width, mode);
        const int py = map_index(integral(js_round(yi)), height, mode);
        const uint8_t *s = src + (py * width + px) * 3;
        for (int k = 0; k < 3; k++) put(out, o + k, s[k], bytes);
        continue;
      }
      double fx0 = __builtin_floor(xi);
      double fy0 = __builtin_floor(yi);
      int x0 = integral(fx0);
      int y0 = integral(fy0);
      double fx = xi - fx0;
      double fy = yi - fy0;
      if (fx < EPS) fx = 0;
      else if (fx > 1 - EPS) {
        fx = 0;
        x0 += 1;
      }
      if (fy < EPS) fy = 0;
      else if (fy > 1 - EPS) {
        fy = 0;
        y0 += 1;
      }
      int s00, s01, s10, s11;
      if (x0 >= 0 && x0 < width - 1 && y0 >= 0 && y0 < height - 1) {
        s00 = (y0 * width + x0) * 3;
        s01 = s00 + 3;
        s10 = s00 + width * 3;
        s11 = s10 + 3;
      } else {
        const int cm = mode == FILL_CONSTANT ? FILL_NEAREST : mode;
        const int xa = map_index(x0, width, cm), xb = map_index(x0 + 1, width, cm);
        const int ya = map_index(y0, height, cm), yb = map_index(y0 + 1, height, cm);
        s00 = (ya * width + xa) * 3;
        s01 = (ya * width + xb) * 3;
        s10 = (yb * width + xa) * 3;
        s11 = (yb * width + xb) * 3;
      }
      const double w00 = (1 - fx) * (1 - fy);
      const double w01 = fx * (1 - fy);
      const double w10 = (1 - fx) * fy;
      const double w11 = fx * fy;
      for (int k = 0; k < 3; k++) {
        putValue(out, o + k, w00 * D[src[s00 + k]] + w01 * D[src[s01 + k]] + w10 * D[src[s10 + k]] + w11 * D[src[s11 + k]], bytes, 0);
      }
    }
  }
}

// The augmentation's default (fill mode nearest, bilinear) is inlined with them as constants, its branches on the
// fill mode and the interpolation gone.
__attribute__((export_name("affine_u8")))
void affine_u8(const uint8_t *src, int height, int width, float *out, const double *m, int mode, double cval, int bilinear) {
  if (mode == FILL_NEAREST && bilinear) affine(src, height, width, out, m, FILL_NEAREST, cval, 1, 0);
  else affine(src, height, width, out, m, mode, cval, bilinear, 0);
}

__attribute__((export_name("affine_u8_u8")))
void affine_u8_u8(const uint8_t *src, int height, int width, uint8_t *out, const double *m, int mode, double cval, int bilinear) {
  if (mode == FILL_NEAREST && bilinear) affine(src, height, width, out, m, FILL_NEAREST, cval, 1, 1);
  else affine(src, height, width, out, m, mode, cval, bilinear, 1);
}

// IEEE 754 half precision for Graft's float16 feature cache (half.ts beside pixel-wasm.ts): float32 to the nearest
// half, ties to even, as a hardware conversion does (past the largest half: infinity; NaN stays NaN), and halves back
// to float32, exactly. Branch-free, so that clang vectorises both loops with SIMD.
#include <stdint.h>

__attribute__((export_name("to_half")))
void to_half(const uint32_t *src, uint16_t *out, int n) {
  for (int i = 0; i < n; i++) {
    const uint32_t b = src[i];
    const uint32_t sign = (b >> 16) & 0x8000;
    const uint32_t a = b & 0x7fffffff;
    // A normal half: rebias the exponent and round the mantissa to nearest even in one add (a carry moves to the
    // next exponent, up to infinity, which is the right result).
    const uint32_t normal = (a - 0x38000000 + 0xfff + ((a >> 13) & 1)) >> 13;
    // Below the smallest normal half: |x| * 2^24 rounded to the nearest even integer (adding and taking away 2^23
    // rounds in float32, ties to even); 1024 is the smallest normal half's bits, which is right too.
    float f;
    __builtin_memcpy(&f, &a, 4);
    const float scaled = f * 16777216.0f;
    const uint32_t sub = (uint32_t)((scaled + 8388608.0f) - 8388608.0f);
    const uint32_t big = a > 0x7f800000 ? 0x7e00 : 0x7c00;
    const uint32_t h = a < 0x38800000 ? sub : a >= 0x47800000 ? big : normal;
    out[i] = (uint16_t)(sign | h);
  }
}

__attribute__((export_name("from_half")))
void from_half(const uint16_t *src, float *out, int n) {
  for (int i = 0; i < n; i++) {
    const uint32_t h = src[i];
    const uint32_t a = (h & 0x7fff) << 13;
    // The half's bits in a float32 with the exponent 112 too small: times 2^112 gives the value exactly, normal or
    // subnormal (WebAssembly keeps float32 subnormals). Infinity and NaN keep the largest exponent.
    float f;
    __builtin_memcpy(&f, &a, 4);
    f *= 5192296858534827628530496329220096.0f;
    uint32_t bits;
    __builtin_memcpy(&bits, &f, 4);
    bits = a >= (0x7c00u << 13) ? a | 0x7f800000 : bits;
    bits |= (h & 0x8000) << 16;
    __builtin_memcpy(&out[i], &bits, 4);
  }
}

// IEEE 754 half precision for Graft's float16 feature cache (half.ts beside pixel-wasm.ts): float32 to the nearest
// half, ties to even, as a hardware conversion does (past the largest half: infinity; NaN stays NaN), and halves back
// to float32, exactly. Eight values at a time with SIMD, the rest one at a time with the same arithmetic lane by lane.
// The vector constants are read from memory before each loop (they are not const, so clang keeps the reads): written
// inline, each would be built again on every turn of the loop by V8.
#include <stdint.h>
#include <wasm_simd128.h>

// toHalf4's constants, in the order it uses them.
uint32_t graft_to_half_constants[11][4] = {
    {0x8000, 0x8000, 0x8000, 0x8000},                  // the sign, shifted down
    {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff},  // |x|
    {0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff},  // 0xfff - 0x38000000: rebias and round
    {1, 1, 1, 1},
    {0x4b800000, 0x4b800000, 0x4b800000, 0x4b800000},  // 2^24
    {0x4b000000, 0x4b000000, 0x4b000000, 0x4b000000},  // 2^23
    {0x7e00, 0x7e00, 0x7e00, 0x7e00},                  // NaN
    {0x7c00, 0x7c00, 0x7c00, 0x7c00},                  // infinity
    {0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000},  // float32 infinity
    {0x477fffff, 0x477fffff, 0x477fffff, 0x477fffff},  // below the first float32 that rounds past the largest half
    {0x38800000, 0x38800000, 0x38800000, 0x38800000},  // the smallest normal half
};

// fromHalf4's constants.
uint32_t graft_from_half_constants[4][4] = {
    {0x7fff, 0x7fff, 0x7fff, 0x7fff},
    {0x77800000, 0x77800000, 0x77800000, 0x77800000},  // 2^112
    {0x0f7fffff, 0x0f7fffff, 0x0f7fffff, 0x0f7fffff},  // below the half infinity's bits shifted up by 13
    {0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000},
};

// Four float32 (as bits) to halves in the low 16 bits of each lane.
static inline __attribute__((always_inline)) v128_t toHalf4(v128_t b, const v128_t *k) {
  const v128_t sign = wasm_v128_and(wasm_u32x4_shr(b, 16), k[0]);
  const v128_t a = wasm_v128_and(b, k[1]);
  // A normal half: rebias the exponent and round the mantissa to nearest even in one add (a carry moves to the next
  // exponent, up to infinity, which is the right result).
  const v128_t normal = wasm_u32x4_shr(wasm_i32x4_add(wasm_i32x4_add(a, k[2]), wasm_v128_and(wasm_u32x4_shr(a, 13), k[3])), 13);
  // Below the smallest normal half: |x| * 2^24 rounded to the nearest even integer (adding and taking away 2^23
  // rounds in float32, ties to even); 1024 is the smallest normal half's bits, which is right too.
  const v128_t sub = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_sub(wasm_f32x4_add(wasm_f32x4_mul(a, k[4]), k[5]), k[5]));
  // Signed comparisons: a has no sign bit. Past the largest half: infinity, or NaN for a NaN.
  const v128_t big = wasm_v128_bitselect(k[6], k[7], wasm_i32x4_gt(a, k[8]));
  const v128_t h = wasm_v128_bitselect(sub, wasm_v128_bitselect(big, normal, wasm_i32x4_gt(a, k[9])), wasm_i32x4_lt(a, k[10]));
  return wasm_v128_or(sign, h);
}

// Four halves (in the low 16 bits of each lane) to float32 bits.
static inline __attribute__((always_inline)) v128_t fromHalf4(v128_t h, const v128_t *k) {
  // The half's bits in a float32 with the exponent 112 too small: times 2^112 gives the value exactly, normal or
  // subnormal (WebAssembly keeps float32 subnormals). Infinity and NaN keep the largest exponent.
  const v128_t a = wasm_i32x4_shl(wasm_v128_and(h, k[0]), 13);
  const v128_t value = wasm_v128_bitselect(wasm_v128_or(a, k[3]), wasm_f32x4_mul(a, k[1]), wasm_i32x4_gt(a, k[2]));
  return wasm_v128_or(value, wasm_i32x4_shl(wasm_u32x4_shr(h, 15), 31));
}

static void loadConstants(const uint32_t (*from)[4], v128_t *k, int n) {
  for (int i = 0; i < n; i++) k[i] = wasm_v128_load(from[i]);
}

__attribute__((export_name("to_half")))
void to_half(const uint32_t *src, uint16_t *out, int n) {
  v128_t k[11];
  loadConstants(graft_to_half_constants, k, 11);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const v128_t lo = toHalf4(wasm_v128_load(src + i), k), hi = toHalf4(wasm_v128_load(src + i + 4), k);
    wasm_v128_store(out + i, wasm_u16x8_narrow_i32x4(lo, hi));
  }
  for (; i < n; i++) out[i] = (uint16_t)wasm_i32x4_extract_lane(toHalf4(wasm_i32x4_splat((int32_t)src[i]), k), 0);
}

__attribute__((export_name("from_half")))
void from_half(const uint16_t *src, float *out, int n) {
  v128_t k[4];
  loadConstants(graft_from_half_constants, k, 4);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const v128_t h = wasm_v128_load(src + i);
    wasm_v128_store(out + i, fromHalf4(wasm_u32x4_extend_low_u16x8(h), k));
    wasm_v128_store(out + i + 4, fromHalf4(wasm_u32x4_extend_high_u16x8(h), k));
  }
  for (; i < n; i++) wasm_v128_store32_lane(out + i, fromHalf4(wasm_i32x4_splat(src[i]), k), 0);
}

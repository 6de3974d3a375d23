// RGB pixels (3 bytes each) written as RGBX (4 bytes each, the fourth 0), what an int8 model whose first convolution
// reads four channels takes (widenPixels in ../pixel-input.ts). Four pixels a swizzle; the mask is read from memory
// before the loop (it is not const, so clang keeps the read), as V8 would build an inline one again on every turn.
// Reads up to 4 bytes past the last pixel of `src`: the caller leaves that much room after it.
#include <stdint.h>
#include <wasm_simd128.h>

uint8_t graft_rgbx_mask[16] = {0, 1, 2, 0x80, 3, 4, 5, 0x80, 6, 7, 8, 0x80, 9, 10, 11, 0x80};

__attribute__((export_name("widen_rgbx")))
void widen_rgbx(const uint8_t *src, uint8_t *out, int n) {
  const v128_t mask = wasm_v128_load(graft_rgbx_mask);
  int p = 0;
  for (; p + 16 <= n; p += 16) {
    for (int q = 0; q < 16; q += 4) wasm_v128_store(out + 4 * (p + q), wasm_i8x16_swizzle(wasm_v128_load(src + 3 * (p + q)), mask));
  }
  for (; p + 4 <= n; p += 4) wasm_v128_store(out + 4 * p, wasm_i8x16_swizzle(wasm_v128_load(src + 3 * p), mask));
  for (; p < n; p++) {
    out[4 * p] = src[3 * p];
    out[4 * p + 1] = src[3 * p + 1];
    out[4 * p + 2] = src[3 * p + 2];
    out[4 * p + 3] = 0;
  }
}

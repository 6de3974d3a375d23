#!/usr/bin/env bash
# Builds packages/inference/src/wasm/pixels.wasm, Graft's pixel arithmetic (the triangle resize, the
# normalisation, the augmentation's resampling, the feature cache's float16 conversions, the JPEG decoder of the
# common case and RGB to RGBX), from the C files beside it. The .wasm is committed, so that
# neither installing nor running Graft needs a compiler. Needs clang and wasm-ld with the WebAssembly target: on
# Debian, `apt-get install clang lld`. The output is the same bytes for the same clang.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../packages/inference/src/wasm" && pwd)"
out="${1:-$dir/pixels.wasm}"
clang --target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -fno-ident \
  -Wl,--no-entry -Wl,--strip-all -Wl,--export=__heap_base -Wl,--max-memory=2147483648 \
  -o "$out" "$dir/triangle.c" "$dir/normalize.c" "$dir/affine.c" "$dir/half.c" "$dir/jpeg.c" "$dir/widen.c"

// Graft's pixel arithmetic in WebAssembly with SIMD: the triangle resize (wasm/triangle.c), the normalisation
// (wasm/normalize.c), the augmentation's resampling (wasm/affine.c), the float16 conversions of the feature cache
// (wasm/half.c, through @graft/vision's half.ts), the JPEG decoder of the common case (wasm/jpeg.c, through jpeg.ts)
// and RGB to RGBX (wasm/widen.c, through pixel-input.ts), built into wasm/pixels.wasm by scripts/build-wasm.sh (npm
// run build:wasm; the .wasm is committed). One instance per thread, on the calling thread; its memory is scratch
// space for one call at a time.
import { readFileSync } from 'node:fs';

/** The functions of pixels.wasm (pointers are byte offsets into its memory). */
export interface PixelKernels {
  rows(src: number, width: number, mid: number, outHeight: number, first: number, count: number, weights: number, maxTaps: number): void;
  columns(mid: number, width: number, out: number, outWidth: number, height: number, first: number, count: number, weights: number, maxTaps: number, columnWeights: number): void;
  normalize_u8(src: number, out: number, pixels: number, norm: number, bgr: number): void;
  normalize_f32(src: number, out: number, pixels: number, norm: number, bgr: number): void;
  affine_u8(src: number, height: number, width: number, out: number, m: number, mode: number, cval: number, bilinear: number): void;
  /** affine_u8 into bytes (each value rounded half to even, clamped to 0..255). */
  affine_u8_u8(src: number, height: number, width: number, out: number, m: number, mode: number, cval: number, bilinear: number): void;
  to_half(src: number, out: number, n: number): void;
  from_half(src: number, out: number, n: number): void;
  jpeg_header(src: number, length: number, info: number): number;
  /** Decodes the image jpeg_header has just read; its bytes must still be where they were. */
  jpeg_decode(work: number, out: number): number;
  /** RGB pixels to RGBX (widen.c). */
  widen_rgbx(src: number, out: number, pixels: number): void;
}

/** Room in the instance's memory for one call: `take` lays out blocks, `ready` grows the memory to hold them. */
export interface Scratch {
  /** The offset of a new block of `bytes` (16-byte aligned). */
  take(bytes: number): number;
  /** The memory's buffer, grown to hold every block taken (views made before a later `take` may be detached). */
  ready(): ArrayBuffer;
}

interface Instance {
  exports: PixelKernels;
  memory: WebAssembly.Memory;
  heapBase: number;
}

let module: WebAssembly.Module | null = null;
let instance: Instance | null = null;
/**
 * Memory an instance keeps between calls (WebAssembly memory never shrinks): after a call that needed more (a very
 * long, thin image), the instance is dropped and the next call starts a fresh one.
 */
const RETAINED_BYTES = 64 * 1024 * 1024;

function load(): Instance {
  if (instance) return instance;
  module ??= new WebAssembly.Module(readFileSync(new URL('./wasm/pixels.wasm', import.meta.url)));
  const e = new WebAssembly.Instance(module, {}).exports as Record<string, unknown>;
  instance = {
    exports: e as unknown as PixelKernels,
    memory: e.memory as WebAssembly.Memory,
    heapBase: (e.__heap_base as WebAssembly.Global).value as number,
  };
  return instance;
}

/** Runs `fn` with this thread's instance and empty scratch space. */
export function withPixelKernels<T>(fn: (k: PixelKernels, scratch: Scratch) => T): T {
  const { exports, memory, heapBase } = load();
  let end = (heapBase + 15) & ~15;
  const scratch: Scratch = {
    take(bytes) {
      const at = end;
      end = (end + bytes + 15) & ~15;
      return at;
    },
    ready() {
      if (end > memory.buffer.byteLength) memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536));
      return memory.buffer;
    },
  };
  try {
    return fn(exports, scratch);
  } finally {
    if (memory.buffer.byteLength > RETAINED_BYTES) instance = null;
  }
}

/** Bytes of WebAssembly memory the pixel arithmetic of this thread holds now. */
export function pixelMemoryBytes(): number {
  return instance?.memory.buffer.byteLength ?? 0;
}

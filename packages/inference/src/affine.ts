// Graft's augmentation resampling of 8-bit RGB images in WebAssembly (wasm/affine.c, through pixel-wasm.ts), on the
// calling thread: @graft/vision's applyTransform hands it every 3-channel byte image, and its JavaScript loop, which
// gives the same bits, serves the rest. A 288 px image took 3.0-3.4 ms in JavaScript.
import { roundHalfEven } from './image';
import { withPixelKernels } from './pixel-wasm';

/** The fill modes in affine.c's order. */
const FILL_MODES = ['nearest', 'reflect', 'wrap', 'constant'] as const;
export type AffineFillMode = (typeof FILL_MODES)[number];

export interface AffineOptions {
  fillMode: AffineFillMode;
  /** The value of pixels outside the image with fillMode 'constant'. */
  cval: number;
  bilinear: boolean;
}

/** Coordinates past this are beyond affine.c's 32-bit integer pixel indices. */
const REACH = 2 ** 28;

/**
 * Whether every coordinate the transform reads lies within reach of affine.c's integer indices (an augmentation's
 * transforms read within a few image sizes; a corner of the output image is where a coordinate is largest).
 */
export function affineInReach(m: ArrayLike<number>, height: number, width: number): boolean {
  for (const x of [0, width - 1]) {
    for (const y of [0, height - 1]) {
      const xi = m[0]! * x + m[1]! * y + m[2]!;
      const yi = m[3]! * x + m[4]! * y + m[5]!;
      if (!(Math.abs(xi) < REACH && Math.abs(yi) < REACH)) return false;
    }
  }
  return true;
}

/**
 * Resamples `src` (height x width x 3 bytes, row-major) into `out` (as many values): output pixel (x, y) reads the
 * input at (m[0]·x + m[1]·y + m[2], m[3]·x + m[4]·y + m[5]). Into bytes, each float32 value is rounded as pixelByte
 * rounds it.
 */
export function affineRgb(src: Uint8Array, height: number, width: number, m: ArrayLike<number>, o: AffineOptions, out: Float32Array | Uint8Array): void {
  const n = height * width * 3;
  if (src.length !== n || out.length !== n) throw new RangeError(`expected ${height}x${width}x3 = ${n} values, got ${src.length} in and ${out.length} out`);
  if (m.length !== 6) throw new RangeError(`expected 6 coefficients, got ${m.length}`);
  const mode = FILL_MODES.indexOf(o.fillMode);
  if (mode < 0) throw new RangeError(`unknown fill mode ${o.fillMode}`);
  if (!affineInReach(m, height, width)) throw new RangeError('the transform maps the image too far for 32-bit pixel indices');
  const bytes = out instanceof Uint8Array;
  withPixelKernels((k, scratch) => {
    const srcAt = scratch.take(n);
    const outAt = scratch.take(n * out.BYTES_PER_ELEMENT);
    const mAt = scratch.take(6 * 8);
    const buffer = scratch.ready();
    new Uint8Array(buffer, srcAt, n).set(src);
    new Float64Array(buffer, mAt, 6).set(m);
    (bytes ? k.affine_u8_u8 : k.affine_u8)(srcAt, height, width, outAt, mAt, mode, o.cval, o.bilinear ? 1 : 0);
    out.set(bytes ? new Uint8Array(buffer, outAt, n) : new Float32Array(buffer, outAt, n));
  });
}

/** A resampled value as a pixel: the float32 value rounded to the nearest integer, halves to even, clamped to 0..255. */
export function pixelByte(v: number): number {
  const r = roundHalfEven(Math.fround(v));
  return r <= 0 ? 0 : r > 255 ? 255 : r;
}

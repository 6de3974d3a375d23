// Image augmentation with the semantics of Keras's ImageDataGenerator, on raw HxWxC pixel buffers.
//
// A random transform is drawn like `ImageDataGenerator.get_random_transform`: rotation in degrees, shifts as a
// fraction of the size (or pixels where the range is >= 1), shear in degrees, zoom drawn independently per axis
// from [1 - z, 1 + z], random flips. It is composed into one affine map about the image centre like
// `apply_affine_transform` (rotation · shift · shear · zoom, mapping output coordinates to input coordinates), then
// the flips are applied, and the image is resampled once with bilinear interpolation (Keras: spline order 1); 8-bit
// RGB images in WebAssembly (@graft/inference affine.ts), the same arithmetic as the loop here.
// Two deliberate differences from Keras: the centre is the exact pixel centre ((n-1)/2; Keras uses n/2 + 0.5,
// which shifts every transform by one pixel), and the height shift moves rows and the width shift columns
// (Keras, after its axis swap, applies the height-range shift along the columns).
import { affineInReach, affineRgb, pixelByte } from '@graft/inference/affine';
import type { Rng } from './random';
import { uniform } from './random';

export type FillMode = 'nearest' | 'constant' | 'reflect' | 'wrap';
export type Interpolation = 'bilinear' | 'nearest';

export interface AugmentationOptions {
  /** Degrees; the angle is drawn from [-r, r]. */
  rotationRange?: number;
  /** Fraction of the width (< 1) or pixels (>= 1); drawn from [-r, r]. */
  widthShiftRange?: number;
  /** Fraction of the height (< 1) or pixels (>= 1); drawn from [-r, r]. */
  heightShiftRange?: number;
  /** Shear angle in degrees, counter-clockwise; drawn from [-r, r]. */
  shearRange?: number;
  /** z: each axis's zoom factor is drawn independently from [1 - z, 1 + z]; or an explicit [lo, hi]. */
  zoomRange?: number | [number, number];
  horizontalFlip?: boolean;
  verticalFlip?: boolean;
  fillMode?: FillMode;
  /** Value of points outside the image with fillMode 'constant', in the units of the pixel buffer. */
  cval?: number;
  interpolation?: Interpolation;
}

/**
 * One concrete transform. theta > 0 rotates the content counter-clockwise as displayed (row 0 at the top);
 * shiftX/shiftY move the content right/down by that many pixels (before rotation, as in Keras's composition);
 * zoomX/zoomY > 1 sample a larger region, so the content shrinks (Keras's convention).
 */
export interface AffineTransform {
  theta: number;
  shiftX: number;
  shiftY: number;
  shear: number;
  zoomX: number;
  zoomY: number;
  flipHorizontal: boolean;
  flipVertical: boolean;
}

export const IDENTITY_TRANSFORM: Readonly<AffineTransform> = Object.freeze({
  theta: 0,
  shiftX: 0,
  shiftY: 0,
  shear: 0,
  zoomX: 1,
  zoomY: 1,
  flipHorizontal: false,
  flipVertical: false,
});

function shiftPixels(range: number, size: number, rng: Rng): number {
  if (!range) return 0;
  const v = uniform(rng, -range, range);
  return range < 1 ? v * size : v;
}

/**
 * Draws a transform for an image of height x width. Every parameter is drawn in a fixed order whether its range
 * is zero or not, so the stream of random numbers does not depend on which options are on.
 */
export function sampleTransform(opts: AugmentationOptions, height: number, width: number, rng: Rng): AffineTransform {
  const rot = opts.rotationRange ?? 0;
  const theta = uniform(rng, -rot, rot);
  const shiftY = shiftPixels(opts.heightShiftRange ?? 0, height, rng);
  const shiftX = shiftPixels(opts.widthShiftRange ?? 0, width, rng);
  const sh = opts.shearRange ?? 0;
  const shear = uniform(rng, -sh, sh);
  const z = opts.zoomRange ?? 0;
  const [zlo, zhi] = typeof z === 'number' ? [1 - z, 1 + z] : z;
  const zx = uniform(rng, zlo, zhi);
  const zy = uniform(rng, zlo, zhi);
  const fh = rng() < 0.5;
  const fv = rng() < 0.5;
  return {
    theta: rot ? theta : 0,
    shiftX,
    shiftY,
    shear: sh ? shear : 0,
    zoomX: zlo === 1 && zhi === 1 ? 1 : zx,
    zoomY: zlo === 1 && zhi === 1 ? 1 : zy,
    flipHorizontal: !!opts.horizontalFlip && fh,
    flipVertical: !!opts.verticalFlip && fv,
  };
}

export function isIdentity(t: AffineTransform): boolean {
  return (
    t.theta === 0 &&
    t.shiftX === 0 &&
    t.shiftY === 0 &&
    t.shear === 0 &&
    t.zoomX === 1 &&
    t.zoomY === 1 &&
    !t.flipHorizontal &&
    !t.flipVertical
  );
}

/**
 * The affine map from output (x = column, y = row) to input coordinates as [a, b, c, d, e, f]:
 * xIn = a·x + b·y + c, yIn = d·x + e·y + f.
 */
export function transformMatrix(t: AffineTransform, height: number, width: number): Float64Array {
  const th = (t.theta * Math.PI) / 180;
  const s = (t.shear * Math.PI) / 180;
  const cos = Math.cos(th);
  const sin = Math.sin(th);
  // R · Sh · Z, with R = [[cos, -sin], [sin, cos]], Sh = [[1, -sin s], [0, cos s]], Z = diag(zx, zy).
  const sh01 = -Math.sin(s);
  const sh11 = Math.cos(s);
  let a = cos * t.zoomX;
  let b = (cos * sh01 - sin * sh11) * t.zoomY;
  let d = sin * t.zoomX;
  let e = (sin * sh01 + cos * sh11) * t.zoomY;
  // Flips act on the output image, so they pre-multiply the output coordinates about the centre.
  if (t.flipHorizontal) {
    a = -a;
    d = -d;
  }
  if (t.flipVertical) {
    b = -b;
    e = -e;
  }
  // The shift is applied inside the rotation: in - C = R·(Sh·Z·(out - C) - shift).
  const bx = -(cos * t.shiftX - sin * t.shiftY);
  const by = -(sin * t.shiftX + cos * t.shiftY);
  const cx = (width - 1) / 2;
  const cy = (height - 1) / 2;
  const c = cx - a * cx - b * cy + bx;
  const f = cy - d * cx - e * cy + by;
  return Float64Array.of(a, b, c, d, e, f);
}

const EPS = 1e-6;

/** Maps an integer index outside [0, n) back inside according to the fill mode (constant is handled apart). */
function mapIndex(i: number, n: number, mode: FillMode): number {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case 'wrap':
      return ((i % n) + n) % n;
    case 'reflect': {
      // Half-sample symmetric, the edge pixel repeated: dcba|abcd|dcba.
      const p = 2 * n;
      let k = ((i % p) + p) % p;
      if (k >= n) k = p - 1 - k;
      return k;
    }
    default:
      return i < 0 ? 0 : n - 1;
  }
}

export interface ApplyOptions {
  fillMode?: FillMode;
  cval?: number;
  interpolation?: Interpolation;
  /** Where to write the result (height·width·channels values); a new buffer otherwise. */
  out?: Float32Array;
}

function affineOptions(opts: ApplyOptions): { fillMode: FillMode; cval: number; bilinear: boolean } {
  return { fillMode: opts.fillMode ?? 'nearest', cval: opts.cval ?? 0, bilinear: (opts.interpolation ?? 'bilinear') === 'bilinear' };
}

/**
 * applyTransform of an 8-bit RGB image into 8-bit pixels (what a frozen model in int8 reads, FrozenModel.pixels):
 * each resampled value rounded to the nearest integer, halves to even (pixelByte of @graft/inference affine.ts).
 */
export function applyTransformToPixels(src: Uint8Array, height: number, width: number, t: AffineTransform, opts: Omit<ApplyOptions, 'out'>, out: Uint8Array): void {
  const n = height * width * 3;
  if (src.length !== n || out.length !== n) throw new RangeError(`expected ${height}x${width}x3 = ${n} values, got ${src.length} in and ${out.length} out`);
  if (isIdentity(t)) {
    out.set(src);
    return;
  }
  const m = transformMatrix(t, height, width);
  if (affineInReach(m, height, width)) {
    affineRgb(src, height, width, m, affineOptions(opts), out);
    return;
  }
  const values = applyTransform(src, height, width, 3, t, opts);
  for (let i = 0; i < n; i++) out[i] = pixelByte(values[i]!);
}

/** Resamples an HxWxC image (channels last) under transform t. */
export function applyTransform(
  src: ArrayLike<number>,
  height: number,
  width: number,
  channels: number,
  t: AffineTransform,
  opts: ApplyOptions = {},
): Float32Array {
  const n = height * width * channels;
  if (src.length !== n) throw new RangeError(`image buffer has ${src.length} values, expected ${n}`);
  const out = opts.out ?? new Float32Array(n);
  if (isIdentity(t)) {
    for (let i = 0; i < n; i++) out[i] = src[i]!;
    return out;
  }
  const { fillMode: mode, cval, bilinear } = affineOptions(opts);
  const m = transformMatrix(t, height, width);
  if (channels === 3 && src instanceof Uint8Array && affineInReach(m, height, width)) {
    // Decoded images, what training augments: the same arithmetic in WebAssembly, the same bits.
    affineRgb(src, height, width, m, { fillMode: mode, cval, bilinear }, out);
    return out;
  }
  const [a, b, c, d, e, f] = m as unknown as [number, number, number, number, number, number];
  const C = channels;
  let o = 0;
  for (let y = 0; y < height; y++) {
    let xi = b * y + c;
    let yi = e * y + f;
    for (let x = 0; x < width; x++, xi += a, yi += d, o += C) {
      if (mode === 'constant' && (xi < -EPS || xi > width - 1 + EPS || yi < -EPS || yi > height - 1 + EPS)) {
        for (let k = 0; k < C; k++) out[o + k] = cval;
        continue;
      }
      if (!bilinear) {
        const px = mapIndex(Math.round(xi), width, mode);
        const py = mapIndex(Math.round(yi), height, mode);
        const s = (py * width + px) * C;
        for (let k = 0; k < C; k++) out[o + k] = src[s + k]!;
        continue;
      }
      let x0 = Math.floor(xi);
      let y0 = Math.floor(yi);
      let fx = xi - x0;
      let fy = yi - y0;
      // Snap coordinates that are a rounding error away from a pixel centre.
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
      let s00: number, s01: number, s10: number, s11: number;
      if (x0 >= 0 && x0 < width - 1 && y0 >= 0 && y0 < height - 1) {
        // All four neighbours inside the image (most pixels): no fill mode to apply.
        s00 = (y0 * width + x0) * C;
        s01 = s00 + C;
        s10 = s00 + width * C;
        s11 = s10 + C;
      } else {
        const cm = mode === 'constant' ? 'nearest' : mode;
        const xa = mapIndex(x0, width, cm);
        const xb = mapIndex(x0 + 1, width, cm);
        const ya = mapIndex(y0, height, cm);
        const yb = mapIndex(y0 + 1, height, cm);
        s00 = (ya * width + xa) * C;
        s01 = (ya * width + xb) * C;
        s10 = (yb * width + xa) * C;
        s11 = (yb * width + xb) * C;
      }
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      if (C === 3) {
        out[o] = w00 * src[s00]! + w01 * src[s01]! + w10 * src[s10]! + w11 * src[s11]!;
        out[o + 1] = w00 * src[s00 + 1]! + w01 * src[s01 + 1]! + w10 * src[s10 + 1]! + w11 * src[s11 + 1]!;
        out[o + 2] = w00 * src[s00 + 2]! + w01 * src[s01 + 2]! + w10 * src[s10 + 2]! + w11 * src[s11 + 2]!;
        continue;
      }
      for (let k = 0; k < C; k++) {
        out[o + k] = w00 * src[s00 + k]! + w01 * src[s01 + k]! + w10 * src[s10 + k]! + w11 * src[s11 + k]!;
      }
    }
  }
  return out;
}

/** Draws a transform from opts with rng and applies it. */
export function augmentImage(
  src: ArrayLike<number>,
  height: number,
  width: number,
  channels: number,
  opts: AugmentationOptions,
  rng: Rng,
  out?: Float32Array,
): Float32Array {
  const t = sampleTransform(opts, height, width, rng);
  return applyTransform(src, height, width, channels, t, {
    fillMode: opts.fillMode,
    cval: opts.cval,
    interpolation: opts.interpolation,
    out,
  });
}

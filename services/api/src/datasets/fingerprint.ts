// Perceptual fingerprints of images: what stays the same when a photo is re-saved, resized or slightly cropped.
//
// An image is reduced once (by libvips, off the event loop) to a GRID x GRID grayscale grid, its aspect ratio
// ignored. From that grid come a few views: the whole frame and some crops of it (VIEWS). Each view is resampled to
// 32x32 and gives
//   - a pHash: the 8x8 lowest frequencies of the 32x32 DCT-II, each bit set where its coefficient is above the
//     median of the 63 (DC left out), 64 bits held as two 32-bit halves;
//   - a 16x16 thumbnail, mean-removed and scaled to unit length, so that a dot product of two is their correlation.
// A copy cropped by a few percent looks, full frame, like a crop view of its original; comparing every view of one
// image with the whole frame of the other (see near-duplicates.ts) is what makes small crops match.
import sharp from 'sharp';

/** Side of the grayscale grid the views are cut from. */
const GRID = 64;
const SIDE = 32;
const LOW = 8;
const THUMB = 16;

/** Views as [left, top, width, height] fractions of the frame; the first is the whole frame. */
export const VIEWS: readonly (readonly [number, number, number, number])[] = [
  [0, 0, 1, 1],
  [0.04, 0.04, 0.92, 0.92],
  [0.08, 0.08, 0.84, 0.84],
  [0.08, 0, 0.92, 1],
  [0, 0.08, 1, 0.92],
  [0, 0, 0.92, 1],
  [0, 0, 1, 0.92],
];

export interface Fingerprint {
  /** pHash per view: view v's 64 bits at [2v] (high half) and [2v + 1] (low half). */
  hashes: Uint32Array;
  /** Unit-length, mean-removed 16x16 thumbnail per view, view v at [256v, 256v + 256). */
  thumbs: Float32Array;
}

/** cos((2x + 1) u pi / 64) for x < 32, u < 8: the rows of the DCT-II that the 8x8 low frequencies need. */
const COS = (() => {
  const t = new Float64Array(LOW * SIDE);
  for (let u = 0; u < LOW; u++) for (let x = 0; x < SIDE; x++) t[u * SIDE + x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * SIDE));
  return t;
})();

/** Bilinear sample of the grid at (x, y), in grid pixel coordinates (pixel centres at i + 0.5). */
function sample(grid: Float32Array, x: number, y: number): number {
  const fx = Math.min(GRID - 1, Math.max(0, x - 0.5));
  const fy = Math.min(GRID - 1, Math.max(0, y - 0.5));
  const x0 = Math.floor(fx);
  const y0 = Math.floor(fy);
  const x1 = Math.min(GRID - 1, x0 + 1);
  const y1 = Math.min(GRID - 1, y0 + 1);
  const ax = fx - x0;
  const ay = fy - y0;
  const top = grid[y0 * GRID + x0]! * (1 - ax) + grid[y0 * GRID + x1]! * ax;
  const bottom = grid[y1 * GRID + x0]! * (1 - ax) + grid[y1 * GRID + x1]! * ax;
  return top * (1 - ay) + bottom * ay;
}

/** One view of the grid resampled to 32x32, each output pixel the mean of 2x2 bilinear samples. */
function viewPixels(grid: Float32Array, [left, top, width, height]: readonly [number, number, number, number]): Float64Array {
  const out = new Float64Array(SIDE * SIDE);
  const sx = (width * GRID) / SIDE;
  const sy = (height * GRID) / SIDE;
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      let sum = 0;
      for (const dy of [0.25, 0.75]) for (const dx of [0.25, 0.75]) sum += sample(grid, left * GRID + (x + dx) * sx, top * GRID + (y + dy) * sy);
      out[y * SIDE + x] = sum / 4;
    }
  }
  return out;
}

/** The 64-bit pHash of a 32x32 grid, as [high, low] halves. */
export function phash(px: Float64Array): [number, number] {
  const rows = new Float64Array(SIDE * LOW); // rows[y][u]: each row's low frequencies
  for (let y = 0; y < SIDE; y++) {
    for (let u = 0; u < LOW; u++) {
      let s = 0;
      for (let x = 0; x < SIDE; x++) s += px[y * SIDE + x]! * COS[u * SIDE + x]!;
      rows[y * LOW + u] = s;
    }
  }
  const coef = new Float64Array(LOW * LOW); // coef[v][u]
  for (let v = 0; v < LOW; v++) {
    for (let u = 0; u < LOW; u++) {
      let s = 0;
      for (let y = 0; y < SIDE; y++) s += rows[y * LOW + u]! * COS[v * SIDE + y]!;
      coef[v * LOW + u] = s;
    }
  }
  const sorted = Array.from(coef.subarray(1)).sort((a, b) => a - b);
  const median = (sorted[31]! + sorted[32]!) / 2;
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < 64; i++) {
    if (coef[i]! <= median) continue;
    if (i < 32) hi |= 1 << (31 - i);
    else lo |= 1 << (63 - i);
  }
  return [hi >>> 0, lo >>> 0];
}

/** A 32x32 grid averaged down to 16x16, mean removed, scaled to unit length (all zeros for a flat image). */
function thumb(px: Float64Array, out: Float32Array, at: number): void {
  const t = new Float64Array(THUMB * THUMB);
  let mean = 0;
  for (let y = 0; y < THUMB; y++) {
    for (let x = 0; x < THUMB; x++) {
      const i = 2 * y * SIDE + 2 * x;
      const v = (px[i]! + px[i + 1]! + px[i + SIDE]! + px[i + SIDE + 1]!) / 4;
      t[y * THUMB + x] = v;
      mean += v;
    }
  }
  mean /= t.length;
  let norm = 0;
  for (let i = 0; i < t.length; i++) {
    t[i]! -= mean;
    norm += t[i]! * t[i]!;
  }
  const scale = norm > 1e-9 ? 1 / Math.sqrt(norm) : 0;
  for (let i = 0; i < t.length; i++) out[at + i] = t[i]! * scale;
}

/** The fingerprint of a GRID x GRID grayscale grid (one byte a pixel). */
export function fingerprintGrid(gray: Uint8Array): Fingerprint {
  const grid = Float32Array.from(gray);
  const hashes = new Uint32Array(2 * VIEWS.length);
  const thumbs = new Float32Array(THUMB * THUMB * VIEWS.length);
  VIEWS.forEach((view, v) => {
    const px = viewPixels(grid, view);
    const [hi, lo] = phash(px);
    hashes[2 * v] = hi;
    hashes[2 * v + 1] = lo;
    thumb(px, thumbs, v * THUMB * THUMB);
  });
  return { hashes, thumbs };
}

/**
 * The fingerprint of decoded pixels (a raw buffer as sharp gives it). Transparent pixels count as white, as the
 * thumbnails show them.
 */
export async function fingerprintPixels(
  raw: Buffer,
  info: { width: number; height: number; channels: 1 | 2 | 3 | 4 },
): Promise<Fingerprint> {
  const gray = await sharp(raw, { raw: { width: info.width, height: info.height, channels: info.channels } })
    .flatten({ background: '#ffffff' })
    .resize(GRID, GRID, { fit: 'fill' })
    .grayscale()
    .raw()
    .toBuffer();
  return fingerprintGrid(gray);
}

/** The fingerprint of encoded image bytes (JPEG, PNG, WebP). */
export async function fingerprintImage(data: Buffer): Promise<Fingerprint> {
  const gray = await sharp(data, { limitInputPixels: false })
    .flatten({ background: '#ffffff' })
    .resize(GRID, GRID, { fit: 'fill' })
    .grayscale()
    .raw()
    .toBuffer();
  return fingerprintGrid(gray);
}

/** The whole-frame pHash as 16 hex digits, as the dataset index stores it. */
export function phashHex(fp: Fingerprint): string {
  return fp.hashes[0]!.toString(16).padStart(8, '0') + fp.hashes[1]!.toString(16).padStart(8, '0');
}

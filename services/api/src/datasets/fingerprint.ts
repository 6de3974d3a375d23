// Perceptual fingerprints of images: what stays the same when a photo is re-saved, resized or slightly cropped.
//
// An image is reduced once (by libvips, off the event loop) to a GRID x GRID colour grid, its aspect ratio ignored.
// From that grid come a few views: the whole frame and some crops of it (VIEWS). Each view gives the mean colours
// of itself and its quadrants, and, resampled to a 32x32 grayscale, gives
//   - a pHash: the 8x8 lowest frequencies of the 32x32 DCT-II, each bit set where its coefficient is above the
//     median of the 63 (DC left out), 64 bits held as two 32-bit halves;
//   - a 16x16 thumbnail, mean-removed and scaled to unit length (stored a byte a value), so that a dot product of
//     two is their correlation.
// A copy cropped by a few percent looks, full frame, like a crop view of its original; comparing every view of one
// image with the whole frame of the other (see near-duplicates.ts) is what makes small crops match.
import sharp, { type Sharp } from 'sharp';

/** Side of the grid the views are cut from. */
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
  /**
   * Unit-length, mean-removed 16x16 thumbnail per view, view v at [256v, 256v + 256), each value times THUMB_SCALE
   * and rounded (a byte each: a dataset of 100,000 images holds 180 MB of them while it is analysed).
   */
  thumbs: Int8Array;
  /** Mean RGB of each view and of its quadrants, COLOURS numbers a view (see colours()). */
  colours: Float32Array;
}

/** cos((2x + 1) u pi / 64) for x < 32, u < 8: the rows of the DCT-II that the 8x8 low frequencies need. */
const COS = (() => {
  const t = new Float64Array(LOW * SIDE);
  for (let u = 0; u < LOW; u++) for (let x = 0; x < SIDE; x++) t[u * SIDE + x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * SIDE));
  return t;
})();

/**
 * How one axis of a view is resampled from GRID to SIDE pixels: each output pixel is the mean of two bilinear
 * samples (at a quarter and three quarters of its width), so four grid pixels with weights (index, weight at
 * [4 o + k]). Bilinear sampling and the 2x2 mean are both separable, so a view is one pass along each axis.
 */
interface Axis {
  idx: Int32Array;
  w: Float64Array;
}

function axis(start: number, extent: number): Axis {
  const idx = new Int32Array(SIDE * 4);
  const w = new Float64Array(SIDE * 4);
  const step = (extent * GRID) / SIDE;
  for (let o = 0; o < SIDE; o++) {
    [0.25, 0.75].forEach((d, s) => {
      const f = Math.min(GRID - 1, Math.max(0, start * GRID + (o + d) * step - 0.5));
      const i0 = Math.floor(f);
      const a = f - i0;
      idx[4 * o + 2 * s] = i0;
      w[4 * o + 2 * s] = (1 - a) / 2;
      idx[4 * o + 2 * s + 1] = Math.min(GRID - 1, i0 + 1);
      w[4 * o + 2 * s + 1] = a / 2;
    });
  }
  return { idx, w };
}

const AXES = VIEWS.map(([left, top, width, height]) => ({ x: axis(left, width), y: axis(top, height) }));

/** View v of the grid resampled to 32x32. */
function viewPixels(grid: Float32Array, v: number): Float64Array {
  const { x, y } = AXES[v]!;
  const rows = new Float64Array(GRID * SIDE);
  for (let r = 0; r < GRID; r++) {
    const at = r * GRID;
    for (let o = 0; o < SIDE; o++) {
      const k = 4 * o;
      rows[r * SIDE + o] =
        grid[at + x.idx[k]!]! * x.w[k]! +
        grid[at + x.idx[k + 1]!]! * x.w[k + 1]! +
        grid[at + x.idx[k + 2]!]! * x.w[k + 2]! +
        grid[at + x.idx[k + 3]!]! * x.w[k + 3]!;
    }
  }
  const out = new Float64Array(SIDE * SIDE);
  for (let o = 0; o < SIDE; o++) {
    const k = 4 * o;
    const [r0, r1, r2, r3] = [y.idx[k]! * SIDE, y.idx[k + 1]! * SIDE, y.idx[k + 2]! * SIDE, y.idx[k + 3]! * SIDE];
    const [w0, w1, w2, w3] = [y.w[k]!, y.w[k + 1]!, y.w[k + 2]!, y.w[k + 3]!];
    for (let c = 0; c < SIDE; c++) {
      out[o * SIDE + c] = rows[r0 + c]! * w0 + rows[r1 + c]! * w1 + rows[r2 + c]! * w2 + rows[r3 + c]! * w3;
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
  const sorted = coef.slice(1).sort();
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
/** Thumbnail values are stored as round(value * THUMB_SCALE); a unit vector's values lie within -1..1. */
export const THUMB_SCALE = 127;

function thumb(px: Float64Array, out: Int8Array, at: number): void {
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
  for (let i = 0; i < t.length; i++) out[at + i] = Math.round(t[i]! * scale * THUMB_SCALE);
}

/** Colour numbers per view: the mean RGB of the view and of its four quadrants. */
export const COLOURS = 15;

/**
 * The mean colour of each view and of its four quadrants, RGB each, 0..255 (COLOURS numbers a view, view v at
 * [COLOURS v]). Box means come from a summed-area table of the grid, boxes rounded to whole grid pixels.
 */
function colours(rgb: Uint8Array): Float32Array {
  const W = GRID + 1;
  const sat = new Float64Array(W * W * 3);
  for (let y = 0; y < GRID; y++) {
    for (let x = 0; x < GRID; x++) {
      for (let c = 0; c < 3; c++) {
        sat[((y + 1) * W + x + 1) * 3 + c] =
          rgb[(y * GRID + x) * 3 + c]! + sat[(y * W + x + 1) * 3 + c]! + sat[((y + 1) * W + x) * 3 + c]! - sat[(y * W + x) * 3 + c]!;
      }
    }
  }
  const out = new Float32Array(COLOURS * VIEWS.length);
  const box = (x0: number, y0: number, x1: number, y1: number, at: number) => {
    const n = Math.max(1, (x1 - x0) * (y1 - y0));
    for (let c = 0; c < 3; c++) {
      out[at + c] = (sat[(y1 * W + x1) * 3 + c]! - sat[(y0 * W + x1) * 3 + c]! - sat[(y1 * W + x0) * 3 + c]! + sat[(y0 * W + x0) * 3 + c]!) / n;
    }
  };
  VIEWS.forEach(([left, top, width, height], v) => {
    const [x0, y0, x1, y1] = [left, top, left + width, top + height].map((f) => Math.round(f * GRID)) as [number, number, number, number];
    const [xm, ym] = [Math.round((x0 + x1) / 2), Math.round((y0 + y1) / 2)];
    const at = v * COLOURS;
    box(x0, y0, x1, y1, at);
    box(x0, y0, xm, ym, at + 3);
    box(xm, y0, x1, ym, at + 6);
    box(x0, ym, xm, y1, at + 9);
    box(xm, ym, x1, y1, at + 12);
  });
  return out;
}

/** The fingerprint of a GRID x GRID RGB grid (three bytes a pixel). */
export function fingerprintGrid(rgb: Uint8Array): Fingerprint {
  const grid = new Float32Array(GRID * GRID);
  for (let i = 0; i < grid.length; i++) grid[i] = 0.299 * rgb[3 * i]! + 0.587 * rgb[3 * i + 1]! + 0.114 * rgb[3 * i + 2]!;
  const hashes = new Uint32Array(2 * VIEWS.length);
  const thumbs = new Int8Array(THUMB * THUMB * VIEWS.length);
  VIEWS.forEach((_, v) => {
    const px = viewPixels(grid, v);
    const [hi, lo] = phash(px);
    hashes[2 * v] = hi;
    hashes[2 * v + 1] = lo;
    thumb(px, thumbs, v * THUMB * THUMB);
  });
  return { hashes, thumbs, colours: colours(rgb) };
}

/**
 * Reduces an image to the GRID x GRID RGB grid the fingerprint is made from (the pipeline's last steps: call it on
 * a fresh sharp instance). The image is turned upright first (EXIF orientation), so that a copy saved with the
 * rotation applied matches its original; transparent pixels count as white, as the thumbnails show them.
 */
export async function toFingerprintGrid(image: Sharp): Promise<Buffer> {
  return image
    .rotate()
    .flatten({ background: '#ffffff' })
    .resize(GRID, GRID, { fit: 'fill' })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer();
}

/** The fingerprint of encoded image bytes (JPEG, PNG, WebP), as the ingest makes it. */
export async function fingerprintImage(data: Buffer): Promise<Fingerprint> {
  return fingerprintGrid(await toFingerprintGrid(sharp(data, { limitInputPixels: false })));
}

/** The whole-frame pHash as 16 hex digits, as the dataset index stores it. */
export function phashHex(fp: Fingerprint): string {
  return fp.hashes[0]!.toString(16).padStart(8, '0') + fp.hashes[1]!.toString(16).padStart(8, '0');
}

// Near-duplicate pairs among fingerprinted images: every pair compared, on 32-bit halves of the 64-bit hashes.
//
// A pair is a candidate where the Hamming distance between one image's whole frame and any view of the other (or
// the other way round) is at most `maxDistance` bits; it is kept where the 16x16 thumbnails correlate at
// `minCorrelation` or more (the best of the same view pairs), a second check that keeps chance hash collisions out;
// within `closeDistance` bits, where chance collisions are rarer still, `closeCorrelation` is enough.
// 3,000 images (4.5 million pairs, 13 view comparisons each) take well under a second.
import type { MatchThresholds } from '@graft/contract';
import { COLOURS, THUMB_SCALE, VIEWS, type Fingerprint } from './fingerprint';

export interface NearPair {
  /** Indexes into the fingerprints given, a < b. */
  a: number;
  b: number;
  /** Hamming distance of the closest views, 0..64. */
  distance: number;
  /** Correlation of the best-aligned views' thumbnails, -1..1. */
  correlation: number;
}

/** How alike two images must be to be near-copies (reported as the health report's thresholds). */
export type MatchOptions = MatchThresholds;

/** Pairs kept at most: a set of thousands of near-identical images would otherwise hold millions. */
export const MAX_PAIRS = 200_000;

/** Thresholds measured on planted re-encoded, resized and cropped copies (bench/dataset-health.ts). */
export const DEFAULT_MATCH: MatchOptions = { maxDistance: 12, minCorrelation: 0.85, closeDistance: 6, closeCorrelation: 0.75, maxColour: 0.035 };

const THUMB_LEN = 256;

export function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

function correlation(a: Int8Array, va: number, b: Int8Array, vb: number): number {
  let s = 0;
  const oa = va * THUMB_LEN;
  const ob = vb * THUMB_LEN;
  for (let i = 0; i < THUMB_LEN; i++) s += a[oa + i]! * b[ob + i]!;
  return s / (THUMB_SCALE * THUMB_SCALE);
}

/** The highest correlation between one image's whole frame and any view of the other. */
function bestCorrelation(a: Int8Array, b: Int8Array): number {
  let best = correlation(a, 0, b, 0);
  for (let v = 1; v < VIEWS.length; v++) best = Math.max(best, correlation(a, 0, b, v), correlation(a, v, b, 0));
  return best;
}

function colourGap(a: Float32Array, va: number, b: Float32Array, vb: number): number {
  let s = 0;
  for (let i = 0; i < COLOURS; i++) s += Math.abs(a[va * COLOURS + i]! - b[vb * COLOURS + i]!);
  return s / COLOURS / 255;
}

/**
 * How far apart two images' colours are, 0..1: the mean absolute difference of the mean colours of a view and its
 * quadrants, for the best-aligned views (one image's whole frame against any view of the other).
 */
export function colourDistance(a: Fingerprint, b: Fingerprint): number {
  let best = colourGap(a.colours, 0, b.colours, 0);
  for (let v = 1; v < VIEWS.length; v++) best = Math.min(best, colourGap(a.colours, 0, b.colours, v), colourGap(a.colours, v, b.colours, 0));
  return best;
}

/** Distance and correlation of two fingerprints, measured as findNearPairs measures them. */
export function compare(a: Fingerprint, b: Fingerprint): { distance: number; correlation: number; colour: number } {
  const d = (x: Uint32Array, i: number, y: Uint32Array, j: number) =>
    popcount32(x[2 * i]! ^ y[2 * j]!) + popcount32(x[2 * i + 1]! ^ y[2 * j + 1]!);
  let distance = d(a.hashes, 0, b.hashes, 0);
  for (let v = 1; v < VIEWS.length; v++) distance = Math.min(distance, d(a.hashes, 0, b.hashes, v), d(a.hashes, v, b.hashes, 0));
  return { distance, correlation: bestCorrelation(a.thumbs, b.thumbs), colour: colourDistance(a, b) };
}

/** Every near-duplicate pair among the fingerprints, ordered by a then b. */
export function findNearPairs(fps: readonly Fingerprint[], opts: MatchOptions = DEFAULT_MATCH): NearPair[] {
  const n = fps.length;
  const views = VIEWS.length;
  // All hashes in one array: image i, view v at [(i * views + v) * 2].
  const h = new Uint32Array(n * views * 2);
  fps.forEach((fp, i) => h.set(fp.hashes.subarray(0, views * 2), i * views * 2));
  const stride = views * 2;
  const pairs: NearPair[] = [];
  for (let a = 0; a < n; a++) {
    const ao = a * stride;
    const aHi = h[ao]!;
    const aLo = h[ao + 1]!;
    for (let b = a + 1; b < n; b++) {
      const bo = b * stride;
      const bHi = h[bo]!;
      const bLo = h[bo + 1]!;
      let best = popcount32(aHi ^ bHi) + popcount32(aLo ^ bLo);
      for (let v = 1; v < views; v++) {
        const d1 = popcount32(aHi ^ h[bo + 2 * v]!) + popcount32(aLo ^ h[bo + 2 * v + 1]!);
        const d2 = popcount32(h[ao + 2 * v]! ^ bHi) + popcount32(h[ao + 2 * v + 1]! ^ bLo);
        best = Math.min(best, d1, d2);
      }
      if (best > opts.maxDistance) continue;
      const corr = bestCorrelation(fps[a]!.thumbs, fps[b]!.thumbs);
      if (corr < (best <= opts.closeDistance ? opts.closeCorrelation : opts.minCorrelation)) continue;
      if (colourDistance(fps[a]!, fps[b]!) > opts.maxColour) continue;
      pairs.push({ a, b, distance: best, correlation: corr });
      if (pairs.length >= MAX_PAIRS) return pairs;
    }
  }
  return pairs;
}

// Graft's 'triangle' resize (WebAssembly) against an exact float computation of Pillow's BILINEAR filter.
import { describe, expect, it } from 'vitest';
import { randomInput } from '../../../test/support/random';
import { pixelMemoryBytes } from '../src/pixel-wasm';
import { triangleResize, triangleTaps } from '../src/resize';

/** w x h RGB bytes of deterministic noise over the whole 0-255 range. */
function noise(w: number, h: number, seed: number): Uint8Array {
  return Uint8Array.from(randomInput(w * h * 3, seed, 0, 256), Math.floor);
}

/** The filter's float weights of output `o` (Pillow's precompute_coeffs for BILINEAR), as [input index, weight]. */
function floatTaps(inSize: number, outSize: number, o: number): [number, number][] {
  const scale = inSize / outSize;
  const support = Math.max(1, scale);
  const centre = (o + 0.5) * scale;
  const taps: [number, number][] = [];
  for (let i = Math.max(0, Math.trunc(centre - support + 0.5)); i < Math.min(inSize, Math.trunc(centre + support + 0.5)); i++) {
    taps.push([i, Math.max(0, 1 - Math.abs((i - centre + 0.5) / support))]);
  }
  const sum = taps.reduce((a, [, w]) => a + w, 0);
  return taps.map(([i, w]) => [i, w / sum]);
}

/** The resize computed in float64: rows, then columns, rounded once at the end. */
function reference(src: Uint8Array, w: number, h: number, ow: number, oh: number): Uint8Array {
  const mid = new Float64Array(w * oh * 3);
  for (let y = 0; y < oh; y++) for (const [iy, wy] of floatTaps(h, oh, y)) for (let i = 0; i < w * 3; i++) mid[y * w * 3 + i]! += src[iy * w * 3 + i]! * wy;
  const out = new Uint8Array(ow * oh * 3);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const acc = [0, 0, 0];
      for (const [ix, wx] of floatTaps(w, ow, x)) for (let c = 0; c < 3; c++) acc[c]! += mid[(y * w + ix) * 3 + c]! * wx;
      for (let c = 0; c < 3; c++) out[(y * ow + x) * 3 + c] = Math.min(255, Math.max(0, Math.round(acc[c]!)));
    }
  }
  return out;
}

/**
 * The fixed-point arithmetic wasm/triangle.c does, one value and one tap at a time: rows with the Q14 taps into
 * intermediates with 7 fractional bits, then columns, each rounded half up.
 */
function fixedPoint(src: Uint8Array, w: number, h: number, ow: number, oh: number): Uint8Array {
  const [ty, tx] = [triangleTaps(h, oh), triangleTaps(w, ow)];
  const mid = new Int32Array(w * oh * 3);
  for (let y = 0; y < oh; y++) {
    for (let i = 0; i < w * 3; i++) {
      let acc = 1 << 6;
      for (let k = 0; k < ty.count[y]!; k++) acc += src[(ty.first[y]! + k) * w * 3 + i]! * ty.weights[y * ty.maxTaps + k]!;
      mid[y * w * 3 + i] = acc >> 7;
    }
  }
  const out = new Uint8Array(ow * oh * 3);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      for (let c = 0; c < 3; c++) {
        let acc = 1 << 20;
        for (let k = 0; k < tx.count[x]!; k++) acc += mid[(y * w + tx.first[x]! + k) * 3 + c]! * tx.weights[x * tx.maxTaps + k]!;
        out[(y * ow + x) * 3 + c] = Math.min(255, acc >> 21);
      }
    }
  }
  return out;
}

describe('triangleTaps', () => {
  it("are Pillow's BILINEAR weights: centre-aligned interpolation when enlarging, a triangle as wide as the reduction when shrinking", () => {
    const up = triangleTaps(4, 8);
    // Output 1 sits at input 0.25 (centre-aligned): 3/4 of input 0 and 1/4 of input 1.
    expect([up.first[1], up.count[1], up.weights[up.maxTaps], up.weights[up.maxTaps + 1]]).toEqual([0, 2, 12288, 4096]);
    const down = triangleTaps(9, 3);
    // Output 1 (centre at input 4's centre) averages inputs 2..6 with a triangle of half-width 3: 1, 2, 3, 2, 1
    // ninths (input 7 is read with weight 0).
    const weights = Array.from(down.weights.subarray(down.maxTaps, down.maxTaps + down.count[1]!));
    expect([down.first[1], down.count[1]]).toEqual([2, 6]);
    expect(weights.map((w) => Math.round((w * 9) / (1 << 14)))).toEqual([1, 2, 3, 2, 1, 0]);
    for (const t of [up, down, triangleTaps(320, 288), triangleTaps(17, 500), triangleTaps(1, 288)]) {
      for (let o = 0; o < t.first.length; o++) {
        let sum = 0;
        for (let k = 0; k < t.count[o]!; k++) sum += t.weights[o * t.maxTaps + k]!;
        expect(sum).toBe(1 << 14);
      }
    }
    expect(() => triangleTaps(0, 3)).toThrow(/positive integers/);
  });
});

describe('triangleResize', () => {
  it('is within one level of the float computation, enlarging, shrinking and both at once', () => {
    for (const [w, h, ow, oh] of [
      [320, 240, 288, 288],
      [61, 47, 32, 32],
      [13, 200, 96, 40],
      [1, 1, 5, 5],
      [288, 288, 288, 288],
      [1000, 7, 31, 64],
    ] as const) {
      const src = noise(w, h, w * 31 + h);
      const got = triangleResize(src, w, h, ow, oh);
      const want = reference(src, w, h, ow, oh);
      expect(got.length).toBe(ow * oh * 3);
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      expect(worst, `${w}x${h} -> ${ow}x${oh}`).toBeLessThanOrEqual(1);
    }
  });

  it('is the fixed-point arithmetic of one tap at a time, bit for bit, whatever the taps of each row and column', () => {
    // 320 -> 288 has pixels of 2 and 3 taps, 500 -> 288 of 3 and 4, 17 -> 500 enlarges; odd widths leave the rows
    // values past the last sixteen.
    for (const [w, h, ow, oh] of [
      [320, 240, 288, 288],
      [500, 375, 288, 288],
      [239, 320, 224, 224],
      [17, 500, 500, 17],
      [1, 1, 5, 5],
      [1000, 7, 31, 64],
      [33, 33, 7, 3],
    ] as const) {
      const src = noise(w, h, w * 7 + h);
      const got = Buffer.from(triangleResize(src, w, h, ow, oh));
      expect(got.equals(Buffer.from(fixedPoint(src, w, h, ow, oh))), `${w}x${h} -> ${ow}x${oh}`).toBe(true);
    }
  });

  it('keeps an image of the output size as it is, and a flat image flat', () => {
    const src = noise(40, 30, 5);
    expect(Buffer.compare(Buffer.from(triangleResize(src, 40, 30, 40, 30)), Buffer.from(src))).toBe(0);
    const flat = new Uint8Array(37 * 23 * 3).fill(201);
    expect(new Set(triangleResize(flat, 37, 23, 288))).toEqual(new Set([201]));
  });

  it('gives the same pixels however many images of other sizes it resized before', () => {
    const small = noise(50, 40, 9);
    const first = triangleResize(small, 50, 40, 64);
    triangleResize(noise(900, 700, 3), 900, 700, 64);
    expect(Buffer.compare(Buffer.from(triangleResize(small, 50, 40, 64)), Buffer.from(first))).toBe(0);
    expect(() => triangleResize(small, 51, 40, 64)).toThrow(/expected 51x40x3/);
  });

  it('does not keep the memory a very long, thin image needed', () => {
    triangleResize(noise(50, 40, 9), 50, 40, 288);
    const usual = pixelMemoryBytes();
    expect(usual).toBeGreaterThan(0);
    expect(usual).toBeLessThan(8 * 1024 * 1024);
    // 40,000 x 100 enlarged to 288 rows: 69 MB of 16-bit intermediate rows.
    const long = new Uint8Array(40_000 * 100 * 3).fill(7);
    expect(new Set(triangleResize(long, 40_000, 100, 288))).toEqual(new Set([7]));
    expect(pixelMemoryBytes()).toBe(0);
    const again = triangleResize(noise(50, 40, 9), 50, 40, 288);
    expect(pixelMemoryBytes()).toBeGreaterThan(0);
    expect(pixelMemoryBytes()).toBeLessThanOrEqual(usual);
    expect(again.length).toBe(288 * 288 * 3);
  });
});

import { describe, expect, it } from 'vitest';
import { applyTransform, applyTransformToPixels, augmentImage, IDENTITY_TRANSFORM, sampleTransform, type AffineTransform } from '../src/augment';
import { createRng } from '../src/random';
import { affineInReach, pixelByte } from '@graft/inference/affine';

/** A 1-channel H x W image whose pixel (r, c) holds r * 100 + c (distinct values). */
function coords(h: number, w: number): Float32Array {
  const a = new Float32Array(h * w);
  for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) a[r * w + c] = r * 100 + c;
  return a;
}

const at = (img: Float32Array, w: number, r: number, c: number) => img[r * w + c]!;
const t = (p: Partial<AffineTransform>): AffineTransform => ({ ...IDENTITY_TRANSFORM, ...p });

describe('applyTransform', () => {
  it('horizontal flip moves pixel (r, c) to (r, W-1-c)', () => {
    const [h, w] = [4, 5];
    const src = coords(h, w);
    const out = applyTransform(src, h, w, 1, t({ flipHorizontal: true }));
    for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) expect(at(out, w, r, w - 1 - c)).toBe(at(src, w, r, c));
  });

  it('vertical flip moves pixel (r, c) to (H-1-r, c)', () => {
    const [h, w] = [3, 4];
    const src = coords(h, w);
    const out = applyTransform(src, h, w, 1, t({ flipVertical: true }));
    for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) expect(at(out, w, h - 1 - r, c)).toBe(at(src, w, r, c));
  });

  it('a 90-degree rotation turns the content counter-clockwise: (r, c) goes to (W-1-c, r)', () => {
    const n = 5;
    const src = coords(n, n);
    for (const interpolation of ['bilinear', 'nearest'] as const) {
      const out = applyTransform(src, n, n, 1, t({ theta: 90 }), { interpolation });
      for (let r = 0; r < n; r++) {
        for (let c = 0; c < n; c++) expect(at(out, n, n - 1 - c, r)).toBeCloseTo(at(src, n, r, c), 4);
      }
    }
  });

  it('keeps the channels of a pixel together', () => {
    const [h, w] = [2, 3];
    const src = new Float32Array(h * w * 3);
    for (let i = 0; i < h * w; i++) src.set([i, 10 + i, 20 + i], i * 3);
    const out = applyTransform(src, h, w, 3, t({ flipHorizontal: true }));
    // pixel (0, 0) came from (0, 2), index 2
    expect(Array.from(out.subarray(0, 3))).toEqual([2, 12, 22]);
  });

  it('a shift with fill mode constant fills the uncovered columns with cval', () => {
    const [h, w] = [3, 6];
    const src = coords(h, w);
    const out = applyTransform(src, h, w, 1, t({ shiftX: 2 }), { fillMode: 'constant', cval: -7 });
    for (let r = 0; r < h; r++) {
      expect(at(out, w, r, 0)).toBe(-7);
      expect(at(out, w, r, 1)).toBe(-7);
      for (let c = 2; c < w; c++) expect(at(out, w, r, c)).toBeCloseTo(at(src, w, r, c - 2), 5);
    }
  });

  it('fill mode nearest repeats the edge pixel', () => {
    const [h, w] = [2, 6];
    const src = coords(h, w);
    const out = applyTransform(src, h, w, 1, t({ shiftX: 2 }), { fillMode: 'nearest' });
    for (let r = 0; r < h; r++) {
      expect(at(out, w, r, 0)).toBe(at(src, w, r, 0));
      expect(at(out, w, r, 1)).toBe(at(src, w, r, 0));
    }
  });

  it('fill mode wrap takes pixels from the opposite side', () => {
    const [h, w] = [2, 6];
    const src = coords(h, w);
    const out = applyTransform(src, h, w, 1, t({ shiftX: 2 }), { fillMode: 'wrap' });
    for (let r = 0; r < h; r++) {
      expect(at(out, w, r, 0)).toBe(at(src, w, r, w - 2));
      expect(at(out, w, r, 1)).toBe(at(src, w, r, w - 1));
    }
  });

  it('fill mode reflect mirrors the image at its edge', () => {
    const [h, w] = [2, 6];
    const src = coords(h, w);
    const out = applyTransform(src, h, w, 1, t({ shiftX: 3 }), { fillMode: 'reflect' });
    // Columns -3, -2, -1 of the source mirror to 2, 1, 0 (the edge pixel repeated: cba|abc).
    for (let r = 0; r < h; r++) {
      expect(at(out, w, r, 0)).toBe(at(src, w, r, 2));
      expect(at(out, w, r, 1)).toBe(at(src, w, r, 1));
      expect(at(out, w, r, 2)).toBe(at(src, w, r, 0));
      expect(at(out, w, r, 3)).toBe(at(src, w, r, 0));
    }
  });

  it('a vertical shift moves rows down', () => {
    const [h, w] = [5, 2];
    const src = coords(h, w);
    const out = applyTransform(src, h, w, 1, t({ shiftY: 1 }), { fillMode: 'constant', cval: 0 });
    for (let c = 0; c < w; c++) {
      expect(at(out, w, 0, c)).toBe(0);
      for (let r = 1; r < h; r++) expect(at(out, w, r, c)).toBeCloseTo(at(src, w, r - 1, c), 5);
    }
  });

  it('zoom > 1 samples a larger region, so the content shrinks towards the centre', () => {
    const n = 9;
    const src = coords(n, n);
    const out = applyTransform(src, n, n, 1, t({ zoomX: 2, zoomY: 2 }), { fillMode: 'constant', cval: -1 });
    // The centre stays; output (4, 6) samples input (4, 8).
    expect(at(out, n, 4, 4)).toBe(at(src, n, 4, 4));
    expect(at(out, n, 4, 6)).toBeCloseTo(at(src, n, 4, 8), 4);
    expect(at(out, n, 4, 8)).toBe(-1);
  });

  it('bilinear interpolation averages neighbours for half-pixel shifts', () => {
    const [h, w] = [1, 4];
    const src = Float32Array.of(0, 10, 20, 30);
    const out = applyTransform(src, h, w, 1, t({ shiftX: 0.5 }), { fillMode: 'nearest' });
    expect(Array.from(out)).toEqual([0, 5, 15, 25]);
  });

  it('the identity transform copies the image', () => {
    const src = coords(3, 3);
    expect(Array.from(applyTransform(src, 3, 3, 1, IDENTITY_TRANSFORM))).toEqual(Array.from(src));
  });
});

describe('sampleTransform / augmentImage', () => {
  const opts = { rotationRange: 40, widthShiftRange: 0.2, heightShiftRange: 0.2, shearRange: 10, zoomRange: 0.2, horizontalFlip: true };

  it('gives the same output for the same seed and different output for another seed', () => {
    const src = coords(16, 16);
    const a = augmentImage(src, 16, 16, 1, opts, createRng(42));
    const b = augmentImage(src, 16, 16, 1, opts, createRng(42));
    const c = augmentImage(src, 16, 16, 1, opts, createRng(43));
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  it('draws parameters inside the ranges, zoom independently per axis', () => {
    const rng = createRng(7);
    let zoomDiffers = 0;
    let flips = 0;
    for (let i = 0; i < 200; i++) {
      const s = sampleTransform(opts, 100, 50, rng);
      expect(Math.abs(s.theta)).toBeLessThanOrEqual(40);
      expect(Math.abs(s.shiftX)).toBeLessThanOrEqual(0.2 * 50);
      expect(Math.abs(s.shiftY)).toBeLessThanOrEqual(0.2 * 100);
      expect(Math.abs(s.shear)).toBeLessThanOrEqual(10);
      for (const z of [s.zoomX, s.zoomY]) {
        expect(z).toBeGreaterThanOrEqual(0.8);
        expect(z).toBeLessThanOrEqual(1.2);
      }
      if (s.zoomX !== s.zoomY) zoomDiffers++;
      if (s.flipHorizontal) flips++;
      expect(s.flipVertical).toBe(false);
    }
    expect(zoomDiffers).toBeGreaterThan(190);
    expect(flips).toBeGreaterThan(60);
    expect(flips).toBeLessThan(140);
  });

  it('shift ranges of 1 or more are pixels, as in Keras', () => {
    const rng = createRng(3);
    for (let i = 0; i < 50; i++) {
      const s = sampleTransform({ widthShiftRange: 1 }, 100, 100, rng);
      expect(Math.abs(s.shiftX)).toBeLessThanOrEqual(1);
    }
  });

  it('with every range off it draws the identity', () => {
    const s = sampleTransform({}, 10, 10, createRng(1));
    expect(s).toEqual(IDENTITY_TRANSFORM);
  });
});

describe('applyTransform on 8-bit RGB images (WebAssembly)', () => {
  it('gives the bits of the JavaScript loop for every fill mode and interpolation', () => {
    const [h, w] = [13, 17];
    const bytes = Uint8Array.from({ length: h * w * 3 }, (_, i) => (i * 37 + (i % 3) * 91 + (i % 7 === 0 ? 200 : 0)) & 0xff);
    const plain = Array.from(bytes); // not a Uint8Array: the JavaScript loop
    const rng = createRng(21);
    const drawn = Array.from({ length: 12 }, () =>
      sampleTransform({ rotationRange: 180, widthShiftRange: 0.6, heightShiftRange: 0.6, shearRange: 30, zoomRange: 0.6, horizontalFlip: true, verticalFlip: true }, h, w, rng),
    );
    // And transforms that land exactly on pixel centres and on halves (ties of the nearest pixel, the EPS snap).
    const exact = [
      t({ theta: Math.PI / 2 }),
      t({ theta: Math.PI }),
      t({ shiftX: 0.5, shiftY: -0.5 }),
      t({ shiftX: 3, shiftY: -2, flipHorizontal: true }),
      t({ zoomX: 2, zoomY: 0.5 }),
      t({ shiftX: -1.5, zoomX: 1.5, flipVertical: true }),
    ];
    let compared = 0;
    for (const fillMode of ['nearest', 'constant', 'reflect', 'wrap'] as const) {
      for (const interpolation of ['bilinear', 'nearest'] as const) {
        for (const tr of [...drawn, ...exact]) {
          const opts = { fillMode, cval: 7.25, interpolation };
          const wasm = applyTransform(bytes, h, w, 3, tr, opts);
          const js = applyTransform(plain, h, w, 3, tr, opts);
          expect(Array.from(wasm), `${fillMode} ${interpolation} ${JSON.stringify(tr)}`).toEqual(Array.from(js));
          compared++;
        }
      }
    }
    expect(compared).toBe(8 * 18);
  });

  it('writes into the buffer given and refuses sizes that do not match', () => {
    const bytes = Uint8Array.from({ length: 4 * 5 * 3 }, (_, i) => i);
    const out = new Float32Array(4 * 5 * 3);
    expect(applyTransform(bytes, 4, 5, 3, t({ flipHorizontal: true }), { out })).toBe(out);
    expect(out[0]).toBe(12); // pixel (0, 4)'s red
    expect(() => applyTransform(bytes, 5, 5, 3, t({ flipHorizontal: true }))).toThrow(RangeError);
    // A shift beyond 32-bit pixel indices is left to the JavaScript loop (nearest: the edge pixels).
    const far = applyTransform(bytes, 4, 5, 3, t({ shiftX: 1e12 }));
    expect(Array.from(far)).toEqual(Array.from(applyTransform(Array.from(bytes), 4, 5, 3, t({ shiftX: 1e12 }))));
    expect(affineInReach([1, 0, 1e12, 0, 1, 0], 4, 5)).toBe(false);
    expect(affineInReach([1, 0, 3, 0, 1, -2], 4, 5)).toBe(true);
  });
});

describe('applyTransformToPixels', () => {
  it('gives each float value of applyTransform rounded to the nearest pixel value, halves to even, clamped to 0..255', () => {
    const [h, w] = [11, 14];
    const bytes = Uint8Array.from({ length: h * w * 3 }, (_, i) => (i * 53 + (i % 5) * 71) & 0xff);
    const rng = createRng(5);
    const drawn = Array.from({ length: 10 }, () => sampleTransform({ rotationRange: 90, widthShiftRange: 0.4, shearRange: 20, zoomRange: 0.4, horizontalFlip: true }, h, w, rng));
    // Half-pixel shifts average two neighbours: values that end in .5 (ties); a far shift goes through the JavaScript loop.
    const transforms = [...drawn, t({ shiftX: 0.5 }), t({ shiftY: -0.5, flipVertical: true }), t({ shiftX: 1e12 }), IDENTITY_TRANSFORM];
    let ties = 0;
    for (const fillMode of ['nearest', 'constant', 'reflect'] as const) {
      for (const interpolation of ['bilinear', 'nearest'] as const) {
        // cval past both ends: clamped.
        for (const cval of [300, -4]) {
          for (const tr of transforms) {
            const opts = { fillMode, cval, interpolation };
            const values = applyTransform(bytes, h, w, 3, tr, opts);
            const out = new Uint8Array(values.length);
            applyTransformToPixels(bytes, h, w, tr, opts, out);
            expect(Array.from(out), `${fillMode} ${interpolation} ${cval} ${JSON.stringify(tr)}`).toEqual(Array.from(values, pixelByte));
            ties += values.filter((v) => v % 1 === 0.5).length;
          }
        }
      }
    }
    expect(ties).toBeGreaterThan(100);
    expect([pixelByte(2.5), pixelByte(3.5), pixelByte(254.7), pixelByte(300), pixelByte(-0.4), pixelByte(-3)]).toEqual([2, 4, 255, 255, 0, 0]);
    expect(() => applyTransformToPixels(bytes, h, w, IDENTITY_TRANSFORM, {}, new Uint8Array(5))).toThrow(RangeError);
  });
});

// The serving path must see exactly the pixels that @graft/vision trains and predicts on.
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import * as vision from '@graft/vision/preprocess';
import { decodeAll, decodeImage, InvalidImageError, normalizedBatches, normalizeInto, pixelTransform, RESIZE_KERNELS, resizeKernelOf, TRAINING_RESIZE_KERNEL, wholeResize } from '../src/image';
import { triangleResize } from '../src/resize';
import { randomInput } from '../../../test/support/random';

/** A noisy RGB(A) test card, w x h. */
function card(w: number, h: number, channels: 3 | 4, seed: number): Buffer {
  const px = Buffer.alloc(w * h * channels);
  let s = seed;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    px[i] = (i % channels === 3 ? 128 + (s % 128) : (i * 7 + (s % 50))) & 0xff;
  }
  return px;
}

async function samples(): Promise<Record<string, Buffer>> {
  const rgb = sharp(card(61, 47, 3, 1), { raw: { width: 61, height: 47, channels: 3 } });
  const rgba = sharp(card(30, 40, 4, 2), { raw: { width: 30, height: 40, channels: 4 } });
  return {
    jpeg: await rgb.clone().jpeg({ quality: 85 }).toBuffer(),
    // Stored sideways with an EXIF orientation that turns it upright on decode.
    'jpeg, EXIF orientation 6': await rgb.clone().jpeg().withMetadata({ orientation: 6 }).toBuffer(),
    'png with alpha': await rgba.clone().png().toBuffer(),
    'grayscale png': await rgb.clone().grayscale().png().toBuffer(),
    webp: await rgb.clone().webp({ quality: 80 }).toBuffer(),
    'large jpeg': await sharp(card(640, 480, 3, 3), { raw: { width: 640, height: 480, channels: 3 } }).jpeg().toBuffer(),
  };
}

describe('decodeImage', () => {
  it('is the decoder @graft/vision trains with', () => {
    expect(vision.decodeImage).toBe(decodeImage);
  });

  it('decodes JPEG, EXIF-rotated JPEG, PNG with alpha, grayscale and WebP to size x size x 3, the same each time', async () => {
    for (const [what, bytes] of Object.entries(await samples())) {
      for (const size of [32, 224]) {
        for (const kernel of RESIZE_KERNELS) {
          const once = await decodeImage(bytes, size, kernel);
          expect(once.length, what).toBe(size * size * 3);
          expect(Buffer.compare(Buffer.from(once), Buffer.from(await decodeImage(bytes, size, kernel))), `${what} at ${size}, ${kernel}`).toBe(0);
        }
      }
    }
  });

  it("resizes with the filter asked: lanczos3 where a model's preprocessing names none, linear as training names", async () => {
    const { 'large jpeg': large } = await samples();
    const lanczos = await decodeImage(large, 100, 'lanczos3');
    const linear = await decodeImage(large, 100, 'linear');
    expect(Buffer.compare(Buffer.from(await decodeImage(large, 100, 'lanczos3')), Buffer.from(lanczos))).toBe(0);
    expect(linear.length).toBe(lanczos.length);
    expect(Buffer.compare(Buffer.from(linear), Buffer.from(lanczos))).not.toBe(0);
    // Both are the same picture: they differ by a little per pixel.
    let sum = 0;
    for (let i = 0; i < linear.length; i++) sum += Math.abs(linear[i]! - lanczos[i]!);
    expect(sum / linear.length).toBeLessThan(20);
    expect(resizeKernelOf({})).toBe('lanczos3');
    expect(resizeKernelOf({ resizeKernel: 'linear' })).toBe('linear');
    expect(() => resizeKernelOf({ resizeKernel: 'cubic' })).toThrow(/resizeKernel must be one of lanczos3, linear, triangle, got "cubic"/);
  });

  it("resizes with 'triangle' (what training uses) in WebAssembly, after libvips has shrunk an image at least twice the size on both sides", async () => {
    expect(TRAINING_RESIZE_KERNEL).toBe('triangle');
    // An image of the input size comes out as it went in (a PNG: no lossy step).
    const raw = card(40, 40, 3, 4);
    const png = await sharp(raw, { raw: { width: 40, height: 40, channels: 3 } }).png().toBuffer();
    expect(Buffer.compare(Buffer.from(await decodeImage(png, 40, 'triangle')), raw)).toBe(0);
    // Smaller on one side (61x47 at 52): the triangle filter alone, from the decoded pixels.
    const { jpeg, 'large jpeg': large } = await samples();
    const decoded = await sharp(jpeg).raw().toBuffer();
    expect(Buffer.compare(Buffer.from(await decodeImage(jpeg, 52, 'triangle')), Buffer.from(triangleResize(decoded, 61, 47, 52)))).toBe(0);
    // Larger on both sides but less than twice (640x480 at 300): the triangle filter alone, from all its pixels.
    const whole = await sharp(large).raw().toBuffer();
    expect(wholeResize(640, 480, 300) && wholeResize(480, 640, 300) && !wholeResize(640, 480, 240)).toBe(true);
    expect(Buffer.compare(Buffer.from(await decodeImage(large, 300, 'triangle')), Buffer.from(triangleResize(whole, 640, 480, 300)))).toBe(0);
    // At least twice on both sides (640x480 at 100): libvips takes it to 100 px high first, its aspect ratio kept; the
    // picture is libvips's 'linear' one within a little per pixel.
    const shrunk = await sharp(large).resize(100, 100, { fit: 'outside', kernel: 'linear' }).raw().toBuffer({ resolveWithObject: true });
    expect([shrunk.info.width, shrunk.info.height]).toEqual([133, 100]);
    const triangle = await decodeImage(large, 100, 'triangle');
    expect(Buffer.compare(Buffer.from(triangle), Buffer.from(triangleResize(shrunk.data, 133, 100, 100)))).toBe(0);
    const linear = await decodeImage(large, 100, 'linear');
    let sum = 0;
    for (let i = 0; i < linear.length; i++) sum += Math.abs(linear[i]! - triangle[i]!);
    expect(sum / linear.length).toBeLessThan(20);
    expect(resizeKernelOf({ resizeKernel: 'triangle' })).toBe('triangle');
  });

  it('turns an image by its EXIF orientation', async () => {
    // Stored: left half white, right half black; orientation 6 displays it turned 90 degrees clockwise, so the
    // white half is on top.
    const raw = Buffer.alloc(20 * 10 * 3);
    for (let y = 0; y < 10; y++) for (let x = 0; x < 10; x++) raw.fill(255, (y * 20 + x) * 3, (y * 20 + x) * 3 + 3);
    const jpeg = await sharp(raw, { raw: { width: 20, height: 10, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const px = await decodeImage(jpeg, 10, 'lanczos3');
    const at = (x: number, y: number) => px[(y * 10 + x) * 3]!;
    expect(at(5, 1)).toBeGreaterThan(200);
    expect(at(5, 8)).toBeLessThan(50);
    expect(Math.abs(at(1, 5) - at(8, 5))).toBeLessThan(30);
  });

  it('names the first undecodable image of a request by its index', async () => {
    const { jpeg } = await samples();
    const images = [jpeg, Buffer.from('not an image'), jpeg, Buffer.alloc(0)];
    const err = await decodeAll(images, 16, 'lanczos3').catch((e) => e);
    expect(err).toBeInstanceOf(InvalidImageError);
    expect(err.index).toBe(1);
    expect(err.code).toBe('INVALID_IMAGE');
    const ok = await decodeAll([jpeg, jpeg], 16, 'lanczos3');
    expect(ok.map((p) => p.length)).toEqual([768, 768]);
  });
});

describe('normalizeInto', () => {
  it('computes (pixel - mean) / std per channel for every preprocessing mode of @graft/vision, in place too', async () => {
    const pixels = await decodeImage((await samples()).jpeg, 20, 'lanczos3');
    for (const p of Object.values(vision.PREPROCESSING)) {
      const expected = Float32Array.from(pixels, (_, i) => {
        const c = i % 3;
        const source = p.channelOrder === 'bgr' ? i - c + (2 - c) : i;
        return (pixels[source]! - p.mean[c]!) / p.std[c]!;
      });
      const inPlace = Float32Array.from(pixels);
      normalizeInto(inPlace, pixelTransform(p), inPlace);
      inPlace.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 4));
      expect(vision.normalizePixels(pixels, p)).toEqual(inPlace);
      const out = new Float32Array(pixels.length + 6).fill(-7);
      normalizeInto(pixels, pixelTransform(p), out, 3);
      expect(Array.from(out.subarray(3, 3 + pixels.length)), p.mode).toEqual(Array.from(inPlace));
      expect([out[0], out[out.length - 1]]).toEqual([-7, -7]);
    }
  });

  it.each([
    // Past the size where WebAssembly takes over, and not a whole number of 4-pixel groups.
    ['61 x 47 pixels', 61 * 47],
    // More than one WebAssembly call's worth (2^18 pixels), as a batch of images is.
    ['a batch of 4 images of 288 x 288', 4 * 288 * 288],
  ])('gives each value as (pixel - sub) * mul in float64 rounded to float32, for bytes and floats, in place and at an offset: %s', (_, pixels) => {
    const n = pixels * 3;
    const bytes = Uint8Array.from(randomInput(n, 5, 0, 256), Math.floor);
    const floats = randomInput(n, 6, -20, 280);
    const transforms = [...Object.values(vision.PREPROCESSING), { channelOrder: 'bgr' as const, scale: [1 / 255, 2, 0.5], offset: [-1, 3, 0.25] }];
    for (const p of transforms) {
      const t = pixelTransform(p);
      for (const src of [bytes, floats]) {
        const expected = Float32Array.from(src, (_, i) => {
          const c = i % 3;
          const source = t.bgr ? i - c + (2 - c) : i;
          return (src[source]! - t.sub[c]!) * t.mul[c]!;
        });
        const out = new Float32Array(n + 6).fill(-7);
        normalizeInto(src, t, out, 3);
        expect(Buffer.compare(Buffer.from(out.buffer, 12, n * 4), Buffer.from(expected.buffer)), `${src.constructor.name} ${JSON.stringify(p)}`).toBe(0);
        expect([out[0], out[2], out[n + 3], out[n + 5]]).toEqual([-7, -7, -7, -7]);
        if (src instanceof Float32Array) {
          const inPlace = Float32Array.from(src);
          normalizeInto(inPlace, t, inPlace);
          expect(Buffer.compare(Buffer.from(inPlace.buffer), Buffer.from(expected.buffer))).toBe(0);
        }
      }
    }
  });

  it('reads scale/offset preprocessing as pixel * scale + offset, in the asked channel order', () => {
    const t = pixelTransform({ channelOrder: 'bgr', scale: [1 / 255, 2, 0.5], offset: -1 });
    const out = new Float32Array(3);
    normalizeInto(Uint8Array.of(10, 20, 30), t, out);
    expect(out[0]).toBeCloseTo(30 / 255 - 1, 6);
    expect(out[1]).toBeCloseTo(20 * 2 - 1, 5);
    expect(out[2]).toBeCloseTo(10 * 0.5 - 1, 6);
  });

  it('rejects a preprocessing it cannot apply', () => {
    expect(() => pixelTransform({ mean: [1, 2], std: [1, 1, 1] })).toThrow(/mean/);
    expect(() => pixelTransform({ std: [1, 0, 1] })).toThrow(/std/);
    expect(() => pixelTransform({ scale: 0 })).toThrow(/scale/);
  });
});

describe('libvips settings of the decoder', () => {
  it('decodes each image on one libvips thread and keeps no operation cache once the decoder is loaded', async () => {
    const { jpeg } = await samples();
    await decodeImage(jpeg, 32, 'linear');
    expect(sharp.concurrency()).toBe(1);
    const cache = sharp.cache();
    expect(cache.memory.max).toBe(0);
    expect(cache.items.max).toBe(0);
  });
});

describe('normalizedBatches', () => {
  it('decodes and normalises images a batch at a time, skipping the ones that do not decode and saying which came', async () => {
    const { jpeg, webp, 'png with alpha': png } = await samples();
    const transform = pixelTransform(vision.PREPROCESSING.tf);
    const images = [jpeg, Buffer.from('not an image'), webp, png, Buffer.alloc(0), Buffer.from('nor this')];
    const batches = [];
    for await (const b of normalizedBatches(images, { size: 8, transform, kernel: 'linear' }, 3)) batches.push(b);
    // The second batch holds one image that decodes; a batch with none would not be given.
    expect(batches.map((b) => [b.batch, b.indices])).toEqual([[2, [0, 2]], [1, [3]]]);
    const per = 8 * 8 * 3;
    for (const b of batches) {
      expect(b.input.length).toBe(b.batch * per);
      for (const [j, i] of b.indices.entries()) {
        const expected = new Float32Array(per);
        normalizeInto(await decodeImage(images[i]!, 8, 'linear'), transform, expected);
        expect(b.input.subarray(j * per, (j + 1) * per)).toEqual(expected);
      }
    }
  });
});

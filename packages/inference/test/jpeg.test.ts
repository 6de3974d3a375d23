// The WebAssembly JPEG decoder against sharp's decode of the same bytes: equal pixels for every JPEG it takes,
// null for every kind it leaves to sharp, and decodeImage the same bytes as decodeWithSharp either way.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp, { type JpegOptions } from 'sharp';
import { describe, expect, it } from 'vitest';
import { randomInput } from '../../../test/support/random';
import { decodeAll, decodeImage, decodeWithSharp } from '../src/image';
import { decodeJpeg } from '../src/jpeg';

const FIXTURES = join(import.meta.dirname, 'fixtures/jpeg');

/** w x h RGB bytes: smooth gradients, hard edges and noise, so that every DCT frequency carries something. */
function photo(w: number, h: number, seed: number): Buffer {
  const noise = randomInput(w * h * 3, seed, -40, 40);
  const out = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const edge = ((x >> 3) + (y >> 2)) % 3 === 0 ? 90 : 0;
      const base = [128 + 100 * Math.sin(x / 5 + seed), (x * 255) / Math.max(1, w - 1), (y * 255) / Math.max(1, h - 1)];
      for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(base[c]! + edge + noise[(y * w + x) * 3 + c]!)));
    }
  }
  return out;
}

function jpeg(w: number, h: number, seed: number, options: JpegOptions): Promise<Buffer> {
  return sharp(photo(w, h, seed), { raw: { width: w, height: h, channels: 3 } }).jpeg(options).toBuffer();
}

/** `bytes` with an EXIF block (APP1, little-endian TIFF) naming one orientation, right after SOI. */
function withOrientation(bytes: Buffer, orientation: number): Buffer {
  const tiff = Buffer.alloc(8 + 2 + 12 + 4);
  tiff.write('II*\0', 0, 'latin1');
  tiff.writeUInt32LE(8, 4);
  tiff.writeUInt16LE(1, 8); // one entry
  tiff.writeUInt16LE(0x0112, 10); // Orientation
  tiff.writeUInt16LE(3, 12); // SHORT
  tiff.writeUInt32LE(1, 14);
  tiff.writeUInt16LE(orientation, 18);
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const header = Buffer.from([0xff, 0xe1, 0, 0]);
  header.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([bytes.subarray(0, 2), header, payload, bytes.subarray(2)]);
}

/** sharp's decode as decodeWithSharp does it, before any resize. */
async function sharpPixels(bytes: Uint8Array): Promise<{ pixels: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(bytes, { failOn: 'error' }).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { pixels: data, width: info.width, height: info.height };
}

async function expectSharpPixels(bytes: Uint8Array): Promise<void> {
  const ours = decodeJpeg(bytes);
  expect(ours).not.toBeNull();
  const ref = await sharpPixels(bytes);
  expect([ours!.width, ours!.height]).toEqual([ref.width, ref.height]);
  expect(Buffer.from(ours!.pixels).equals(ref.pixels)).toBe(true);
}

describe('decodeJpeg', () => {
  it('gives sharp’s pixels for baseline 4:2:0 and 4:4:4 JPEGs of any size and quality', async () => {
    const sizes: [number, number][] = [[1, 1], [2, 2], [3, 5], [7, 9], [16, 16], [17, 33], [33, 17], [100, 75], [321, 239]];
    let i = 0;
    for (const [w, h] of sizes) {
      for (const chromaSubsampling of ['4:2:0', '4:4:4']) {
        for (const quality of [30, 90, 100]) {
          await expectSharpPixels(await jpeg(w, h, ++i, { quality, chromaSubsampling }));
        }
      }
    }
  });

  it('gives sharp’s pixels with optimised Huffman tables and with quantisation tables of other encoders', async () => {
    for (const [n, options] of [
      [1, { quality: 80, optimiseCoding: true }],
      [3, { quality: 60, quantisationTable: 3 }],
      [4, { quality: 95, trellisQuantisation: true, overshootDeringing: true }],
    ] as [number, JpegOptions][]) {
      await expectSharpPixels(await jpeg(64 + n, 48 - n, n, options));
    }
  });

  it('gives sharp’s pixels for 4:2:2 and for restart intervals (libjpeg-turbo cjpeg files)', async () => {
    for (const name of ['subsampling-422.jpg', 'restart-every-row.jpg', 'restart-3-blocks-optimized.jpg']) {
      await expectSharpPixels(readFileSync(join(FIXTURES, name)));
    }
  });

  it('leaves to sharp what it does not take', async () => {
    const photo64 = photo(64, 48, 7);
    const raw = { raw: { width: 64, height: 48, channels: 3 as const } };
    const declined: [string, Buffer][] = [
      ['progressive', await sharp(photo64, raw).jpeg({ progressive: true }).toBuffer()],
      ['progressive (mozjpeg)', await sharp(photo64, raw).jpeg({ mozjpeg: true }).toBuffer()],
      ['EXIF orientation 6', withOrientation(await sharp(photo64, raw).jpeg().toBuffer(), 6)],
      ['an ICC profile', await sharp(photo64, raw).jpeg().withIccProfile('p3').toBuffer()],
      ['grayscale', await sharp(photo64, raw).toColourspace('b-w').jpeg().toBuffer()],
      ['PNG', await sharp(photo64, raw).png().toBuffer()],
      ['4:4:0', readFileSync(join(FIXTURES, 'subsampling-440.jpg'))],
      ['arithmetic coding', readFileSync(join(FIXTURES, 'arithmetic.jpg'))],
      ['one component per scan', readFileSync(join(FIXTURES, 'one-component-per-scan.jpg'))],
    ];
    for (const [what, bytes] of declined) {
      expect(decodeJpeg(bytes), what).toBeNull();
      // decodeImage takes sharp's path for these, so its bytes are decodeWithSharp's.
      expect(Buffer.from(await decodeImage(bytes, 32, 'triangle')).equals(Buffer.from(await decodeWithSharp(bytes, 32, 'triangle'))), what).toBe(true);
    }
    // EXIF without a rotation does not stop it.
    await expectSharpPixels(withOrientation(await sharp(photo64, raw).jpeg().toBuffer(), 1));
  });

  it('declines Huffman tables libjpeg refuses, which sharp then refuses', async () => {
    const whole = await jpeg(40, 30, 9, { quality: 80 });
    // The first DHT segment replaced by one DC table whose two 1-bit codes include the all-ones code "1".
    const at = whole.indexOf(Buffer.from([0xff, 0xc4]));
    const end = at + 2 + whole.readUInt16BE(at + 2);
    const counts = Buffer.alloc(16);
    counts[0] = 2;
    const table = Buffer.concat([Buffer.from([0x00]), counts, Buffer.from([0, 1])]);
    const header = Buffer.from([0xff, 0xc4, 0, 0]);
    header.writeUInt16BE(table.length + 2, 2);
    const bad = Buffer.concat([whole.subarray(0, at), header, table, whole.subarray(end)]);
    expect(decodeJpeg(bad)).toBeNull();
    await expect(decodeWithSharp(bad, 32, 'triangle')).rejects.toThrow();
  });

  it('declines a truncated stream, which sharp then decodes or refuses as before', async () => {
    const whole = await jpeg(80, 60, 3, { quality: 90 });
    for (const cut of [whole.length - 2, Math.floor(whole.length * 0.7), 400, 20]) {
      const bytes = whole.subarray(0, cut);
      expect(decodeJpeg(bytes), `cut at ${cut}`).toBeNull();
    }
  });

  it('on damaged streams gives sharp’s pixels or declines, never other pixels', async () => {
    const whole = await jpeg(72, 56, 11, { quality: 85 });
    let seed = 20261206;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    let taken = 0;
    for (let t = 0; t < 300; t++) {
      const bytes = Buffer.from(whole);
      for (let k = 0, n = 1 + Math.floor(next() * 3); k < n; k++) bytes[Math.floor(next() * bytes.length)] = Math.floor(next() * 256);
      const ours = decodeJpeg(bytes);
      if (!ours) continue;
      taken++;
      const ref = await sharpPixels(bytes); // rejects (and fails the test) where sharp refuses what was taken
      expect(Buffer.from(ours.pixels).equals(ref.pixels), `trial ${t}`).toBe(true);
    }
    expect(taken).toBeGreaterThan(50); // most single-byte damage lands in the entropy-coded data and decodes
  });

  it('is what decodeImage uses for the training filter, with the same bytes as decodeWithSharp', async () => {
    const small = await jpeg(300, 200, 5, { quality: 90 }); // not larger than 288 on both sides: WebAssembly
    const larger = await jpeg(400, 320, 6, { quality: 90 }); // larger on both sides, less than twice: WebAssembly too
    const large = await jpeg(640, 580, 7, { quality: 90 }); // at least twice on both sides: sharp shrinks it first
    for (const bytes of [small, larger, large]) {
      expect(Buffer.from(await decodeImage(bytes, 288, 'triangle')).equals(Buffer.from(await decodeWithSharp(bytes, 288, 'triangle')))).toBe(true);
    }
  });
});

describe('decodeAll with the WebAssembly decoder', () => {
  it('gives the event loop a turn between images, as sharp on the thread pool does', async () => {
    const images = await Promise.all(Array.from({ length: 12 }, (_, i) => jpeg(48, 40, 30 + i, { quality: 85 })));
    let turns = 0;
    let running = true;
    const spin = () => {
      turns++;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    const decoded = await decodeAll(images, 64, 'triangle'); // not larger than 64 px: all through WebAssembly
    running = false;
    expect(decoded).toHaveLength(12);
    expect(turns).toBeGreaterThanOrEqual(images.length);
  });
});

describe('decodeJpeg on the shared datasets', () => {
  const root = join(import.meta.dirname, '../../../../shared/datasets');
  const files = (() => {
    try {
      return readdirSync(join(root, 'flowers/validation/daisy')).slice(0, 40).map((f) => join(root, 'flowers/validation/daisy', f));
    } catch {
      return [];
    }
  })();
  it.skipIf(files.length === 0)('gives sharp’s pixels for real photos', async () => {
    for (const f of files) await expectSharpPixels(readFileSync(f));
  });
});

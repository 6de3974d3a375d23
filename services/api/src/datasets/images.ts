import sharp from 'sharp';
import { fingerprintGrid, toFingerprintGrid, type Fingerprint } from './fingerprint';

export type ImageFormat = 'jpeg' | 'png' | 'webp';

export type InspectedImage =
  | { ok: true; format: ImageFormat; width: number; height: number; fingerprint: Fingerprint }
  | { ok: false; reason: string };

function at(buf: Uint8Array, offset: number, magic: string | readonly number[]): boolean {
  const bytes = typeof magic === 'string' ? [...magic].map((c) => c.charCodeAt(0)) : magic;
  if (buf.length < offset + bytes.length) return false;
  return bytes.every((b, i) => buf[offset + i] === b);
}

/**
 * Names the image format of some bytes from their signature: the three accepted ones, or another well-known one
 * (so that a rejection can say 'gif'), or null.
 */
export function sniffImageFormat(buf: Uint8Array): string | null {
  if (at(buf, 0, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (at(buf, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (at(buf, 0, 'RIFF') && at(buf, 8, 'WEBP')) return 'webp';
  if (at(buf, 0, 'GIF87a') || at(buf, 0, 'GIF89a')) return 'gif';
  if (at(buf, 0, 'BM')) return 'bmp';
  if (at(buf, 0, [0x49, 0x49, 0x2a, 0x00]) || at(buf, 0, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  if (at(buf, 4, 'ftyp')) {
    const brand = String.fromCharCode(...buf.subarray(8, 12));
    if (brand === 'avif' || brand === 'avis') return 'avif';
    if (['heic', 'heix', 'hevc', 'heim', 'heis', 'mif1', 'msf1'].includes(brand)) return 'heif';
  }
  if (at(buf, 0, [0x00, 0x00, 0x01, 0x00])) return 'ico';
  if (at(buf, 0, [0xff, 0x0a]) || at(buf, 4, 'JXL ')) return 'jxl';
  if (at(buf, 4, 'jP  ')) return 'jp2';
  const head = Buffer.from(buf.subarray(0, 256)).toString('latin1').trimStart().toLowerCase();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'))) return 'svg';
  return null;
}

const ACCEPTED = new Set<string>(['jpeg', 'png', 'webp']);

/**
 * Width and height from the header of a JPEG (first SOF marker), PNG (IHDR) or WebP (VP8, VP8L or VP8X chunk),
 * without libvips; null when the header cannot be read this way. Used to refuse over-limit images and to weigh the
 * decode budget; the decode itself enforces the pixel limit again on what libvips finds.
 */
export function headerDimensions(buf: Buffer, format: ImageFormat): { width: number; height: number } | null {
  const dims = (width: number, height: number) => (width > 0 && height > 0 ? { width, height } : null);
  try {
    if (format === 'png') return at(buf, 12, 'IHDR') ? dims(buf.readUInt32BE(16), buf.readUInt32BE(20)) : null;
    if (format === 'webp') {
      if (at(buf, 12, 'VP8 ') && at(buf, 23, [0x9d, 0x01, 0x2a])) {
        return dims(buf.readUInt16LE(26) & 0x3fff, buf.readUInt16LE(28) & 0x3fff);
      }
      if (at(buf, 12, 'VP8L') && buf[20] === 0x2f) {
        const bits = buf.readUInt32LE(21);
        return dims((bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1);
      }
      if (at(buf, 12, 'VP8X')) return dims(buf.readUIntLE(24, 3) + 1, buf.readUIntLE(27, 3) + 1);
      return null;
    }
    let i = 2;
    while (i + 9 < buf.length) {
      if (buf[i] !== 0xff) return null;
      const marker = buf[i + 1]!;
      if (marker === 0xff) {
        i += 1;
        continue;
      }
      if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
        i += 2;
        continue;
      }
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return dims(buf.readUInt16BE(i + 7), buf.readUInt16BE(i + 5));
      }
      i += 2 + buf.readUInt16BE(i + 2);
    }
    return null;
  } catch {
    return null;
  }
}

/** Waits while more than `budget` pixels are being decoded at once; one image alone always proceeds. */
class PixelBudget {
  private inUse = 0;
  private readonly waiting: { pixels: number; go: () => void }[] = [];
  constructor(private readonly budget: number) {}

  async acquire(pixels: number): Promise<void> {
    if (this.inUse === 0 || (this.waiting.length === 0 && this.inUse + pixels <= this.budget)) {
      this.inUse += pixels;
      return;
    }
    await new Promise<void>((go) => this.waiting.push({ pixels, go }));
  }

  release(pixels: number): void {
    this.inUse -= pixels;
    while (this.waiting.length > 0) {
      const next = this.waiting[0]!;
      if (this.inUse !== 0 && this.inUse + next.pixels > this.budget) break;
      this.waiting.shift();
      this.inUse += next.pixels;
      next.go();
    }
  }
}

function shortMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.replace(/^vips\w*:\s*/i, '').trim();
}

export interface ImageInspectorOptions {
  maxImagePixels: number;
  /** Pixels decoded at the same time, at most (one larger image still proceeds alone). Bounds decode memory. */
  pixelBudget?: number;
}

/**
 * Decides whether some bytes are an image the service accepts: JPEG, PNG or WebP by signature, within the pixel
 * limit, and decodable to the last byte. The decode is real: libvips reads the whole image with `failOn: 'error'`,
 * so truncated and corrupt files fail here, not in training, while it reduces the image to the small grid its
 * perceptual fingerprint is made of (fingerprint.ts). JPEG and WebP may decode at a reduced scale for that, which
 * still reads every coefficient of the entropy-coded data: truncations, cut-out and flipped bytes fail as they do in
 * a full-size decode (400 of 400 corruptions gave the same verdict both ways). `.stats()` would decode fully but also
 * computes entropy and sharpness, about ten times the cost.
 */
export class ImageInspector {
  private readonly maxPixels: number;
  private readonly budget: PixelBudget;

  constructor(opts: ImageInspectorOptions) {
    this.maxPixels = opts.maxImagePixels;
    this.budget = new PixelBudget(opts.pixelBudget ?? Math.max(opts.maxImagePixels, 64_000_000));
  }

  async inspect(data: Buffer): Promise<InspectedImage> {
    if (data.length === 0) return { ok: false, reason: 'empty file' };
    const sniffed = sniffImageFormat(data);
    if (!sniffed) return { ok: false, reason: 'not a decodable image' };
    if (!ACCEPTED.has(sniffed)) return { ok: false, reason: `unsupported image format '${sniffed}'` };
    const format = sniffed as ImageFormat;

    let header = headerDimensions(data, format);
    if (!header) {
      try {
        const meta = await sharp(data, { limitInputPixels: false }).metadata();
        if (meta.format !== format || !meta.width || !meta.height) return { ok: false, reason: 'not a decodable image' };
        header = { width: meta.width, height: meta.height };
      } catch (err) {
        return { ok: false, reason: `not a decodable image (${shortMessage(err)})` };
      }
    }
    const { width, height } = header;
    const pixels = width * height;
    if (pixels > this.maxPixels) {
      const mp = (n: number) => `${(n / 1e6).toFixed(1)} megapixels`;
      return { ok: false, reason: `image is ${width}x${height} (${mp(pixels)}), over the ${mp(this.maxPixels)} limit` };
    }

    await this.budget.acquire(pixels);
    try {
      const grid = await toFingerprintGrid(sharp(data, { failOn: 'error', limitInputPixels: this.maxPixels, sequentialRead: true }));
      return { ok: true, format, width, height, fingerprint: fingerprintGrid(grid) };
    } catch (err) {
      return { ok: false, reason: `not a decodable image (${shortMessage(err)})` };
    } finally {
      this.budget.release(pixels);
    }
  }
}

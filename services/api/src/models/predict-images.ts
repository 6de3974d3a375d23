// Checks the images of one /predict request before any is decoded: JPEG, PNG or WebP by signature (the formats
// dataset uploads accept), each within GRAFT_MAX_IMAGE_PIXELS by its header, all together within
// GRAFT_MAX_PREDICT_PIXELS. Only headers are read here, so a decompression bomb costs nothing.
import sharp from 'sharp';
import { ApiError } from '../errors';
import { headerDimensions, sniffImageFormat, type ImageFormat } from '../datasets/images';

const ACCEPTED = new Set(['jpeg', 'png', 'webp']);

/** The error for an image of a request that cannot be decoded (by its header here, or by the decoder later). */
export const undecodableImage = (index: number, format?: string) =>
  new ApiError('INVALID_IMAGE', `image ${index} is not a decodable JPEG, PNG or WebP image${format ? ` (it is ${format.toUpperCase()})` : ''}`, {
    index,
    ...(format ? { format } : {}),
  });
const megapixels = (n: number) => `${(n / 1e6).toFixed(1)} megapixels`;

async function dimensions(bytes: Buffer, format: ImageFormat): Promise<{ width: number; height: number } | null> {
  const header = headerDimensions(bytes, format);
  if (header) return header;
  try {
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    return meta.format === format && meta.width && meta.height ? { width: meta.width, height: meta.height } : null;
  } catch {
    return null;
  }
}

/** Answers the pixels of all the images together. */
export async function checkPredictImages(
  images: readonly Uint8Array[],
  limits: { imagePixels: number; predictPixels: number },
): Promise<number> {
  let total = 0;
  for (let i = 0; i < images.length; i++) {
    const bytes = Buffer.from(images[i]!.buffer, images[i]!.byteOffset, images[i]!.byteLength);
    const format = sniffImageFormat(bytes);
    if (!format || !ACCEPTED.has(format)) throw undecodableImage(i, format ?? undefined);
    const dims = await dimensions(bytes, format as ImageFormat);
    if (!dims) throw undecodableImage(i);
    const pixels = dims.width * dims.height;
    if (pixels > limits.imagePixels) {
      throw new ApiError(
        'IMAGE_TOO_LARGE',
        `image ${i} is ${dims.width}x${dims.height} (${megapixels(pixels)}), over the ${megapixels(limits.imagePixels)} limit (GRAFT_MAX_IMAGE_PIXELS)`,
        { index: i, width: dims.width, height: dims.height, limit: limits.imagePixels },
      );
    }
    total += pixels;
    if (total > limits.predictPixels) {
      throw new ApiError(
        'PAYLOAD_TOO_LARGE',
        `the images of one request may hold at most ${megapixels(limits.predictPixels)} together (GRAFT_MAX_PREDICT_PIXELS); image ${i} goes over`,
        { index: i, limit: limits.predictPixels },
      );
    }
  }
  return total;
}

// From encoded image bytes to the network's input: decode (JPEG, PNG, WebP) with sharp (@graft/inference's
// decodeImage, the one decoder of Graft), turn by the EXIF orientation, force 3-channel 8-bit RGB, and resize to
// size x size. The resize stretches the image to the square
// without keeping the aspect ratio, as Keras's `load_img(target_size=...)` does, so a model sees the whole image
// (no crop) exactly as the Keras recipe trained it. Then the pixels are normalised per the backbone's
// preprocessing: (pixel - mean) / std per channel, in RGB or BGR order.
import { decodeImage, normalizeInto, pixelTransform, resizeKernelOf, type ResizeKernel } from '@graft/inference/image';
import { ImageDecodeError, throwIfAborted } from './errors';

export interface Preprocessing {
  /** Keras's name of the scheme: 'tf' ([-1, 1]), 'unit' ([0, 1]), 'caffe' (BGR, ImageNet means), 'torch'. */
  mode: 'tf' | 'unit' | 'caffe' | 'torch';
  /** Channel order the network expects. */
  channelOrder: 'rgb' | 'bgr';
  /** Per channel, in the network's channel order, in pixel units (0..255). */
  mean: [number, number, number];
  std: [number, number, number];
  /** The resize filter the model was trained with; 'lanczos3' where absent (models made before it was named). */
  resizeKernel?: ResizeKernel;
}

export const PREPROCESSING: Record<Preprocessing['mode'], Preprocessing> = {
  tf: { mode: 'tf', channelOrder: 'rgb', mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5] },
  unit: { mode: 'unit', channelOrder: 'rgb', mean: [0, 0, 0], std: [255, 255, 255] },
  caffe: { mode: 'caffe', channelOrder: 'bgr', mean: [103.939, 116.779, 123.68], std: [1, 1, 1] },
  torch: {
    mode: 'torch',
    channelOrder: 'rgb',
    mean: [0.485 * 255, 0.456 * 255, 0.406 * 255],
    std: [0.229 * 255, 0.224 * 255, 0.225 * 255],
  },
};

/** How many images sharp decodes at once (it runs each on its own libuv/libvips threads). */
export const DEFAULT_DECODE_CONCURRENCY = 4;

/**
 * How many images' bytes decodeInOrder reads ahead of the image it decodes. Reading from object storage is mostly
 * waiting: with 20 ms a request, reading only as deep as decoding (4) gave 236 images/s, reading 32 ahead 341; with 50
 * ms, 122 against 339 (bench/s3-read.ts).
 */
export const DEFAULT_READ_AHEAD = 32;

/**
 * Decodes one image to size x size x 3 RGB bytes (row-major, channels last); throws on bytes that are not a
 * decodable image. The same decoder serves predictions in @graft/inference.
 */
export { decodeImage, resizeKernelOf };
export { TRAINING_RESIZE_KERNEL, type ResizeKernel } from '@graft/inference/image';

/**
 * Normalises RGB pixels (0..255, channels last) per p into out (a new buffer by default). Works on any
 * number of pixels, so a whole batch can be done at once.
 */
export function normalizePixels(src: ArrayLike<number>, p: Preprocessing, out?: Float32Array): Float32Array {
  const dst = out ?? new Float32Array(src.length);
  normalizeInto(src, pixelTransform(p), dst);
  return dst;
}

/** Decodes and normalises one image: the network's input for it. */
export async function preprocessImage(bytes: Uint8Array, size: number, p: Preprocessing): Promise<Float32Array> {
  return normalizePixels(await decodeImage(bytes, size, resizeKernelOf(p)), p);
}

/** Runs fn over items with at most `limit` calls in flight; results keep the order of items. */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  signal?: AbortSignal,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      throwIfAborted(signal);
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

export interface DecodeManyOptions {
  /** Images decoded at once (default DEFAULT_DECODE_CONCURRENCY). */
  concurrency?: number;
  /** Images read ahead of the one decoded (default DEFAULT_READ_AHEAD; at least `concurrency`). */
  readAhead?: number;
  /** The resize filter of the model the images are for (decodeImage). */
  kernel: ResizeKernel;
  signal?: AbortSignal;
  /** Called after each image with the number done so far. */
  onProgress?(done: number, total: number): void;
}

/**
 * Decodes many images concurrently. An image that fails to decode yields an ImageDecodeError (with its index)
 * in its place; reading errors are thrown.
 */
export function decodeImages(
  count: number,
  read: (index: number) => Promise<Uint8Array>,
  size: number,
  opts: DecodeManyOptions,
): Promise<(Uint8Array | ImageDecodeError)[]> {
  return Promise.all(decodeInOrder(count, read, size, opts));
}

/**
 * Starts decoding images in order, at most `concurrency` at a time (sharp decodes off this thread), and returns
 * at once one promise per image: its pixels, or an ImageDecodeError where it cannot be decoded. Bytes are read in
 * order up to `readAhead` images beyond the one being decoded, so that a store's latency is waited out in parallel.
 * Decoding runs ahead of whoever awaits the promises, so it overlaps with work done on the decoded images meanwhile.
 * A reading error, or an abort, rejects the promises of that image and of every image not started yet.
 */
export function decodeInOrder(
  count: number,
  read: (index: number) => Promise<Uint8Array>,
  size: number,
  opts: DecodeManyOptions,
): Promise<Uint8Array | ImageDecodeError>[] {
  const settle: { resolve(v: Uint8Array | ImageDecodeError): void; reject(e: unknown): void }[] = [];
  const promises = Array.from(
    { length: count },
    (_, i) =>
      new Promise<Uint8Array | ImageDecodeError>((resolve, reject) => {
        settle[i] = { resolve, reject };
      }),
  );
  // Nobody may await some of them (a run that stops early): their failures must not go unhandled.
  for (const p of promises) p.catch(() => {});
  const concurrency = Math.max(1, Math.min(opts.concurrency ?? DEFAULT_DECODE_CONCURRENCY, count));
  const readAhead = Math.max(concurrency, opts.readAhead ?? DEFAULT_READ_AHEAD);
  const reads: (Promise<Uint8Array> | undefined)[] = [];
  let nextRead = 0;
  const readUpTo = (end: number) => {
    for (; nextRead < Math.min(end, count) && !opts.signal?.aborted; nextRead++) {
      const i = nextRead;
      try {
        reads[i] = read(i);
      } catch (err) {
        reads[i] = Promise.reject(err); // thrown where image i is awaited, as a rejection would be
      }
      reads[i]!.catch(() => {});
    }
  };
  let next = 0;
  let done = 0;
  let failure: unknown = null;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      try {
        if (failure) throw failure;
        throwIfAborted(opts.signal);
        readUpTo(i + readAhead);
        const bytes = await reads[i]!;
        reads[i] = undefined;
        let result: Uint8Array | ImageDecodeError;
        try {
          result = await decodeImage(bytes, size, opts.kernel);
        } catch (err) {
          result = new ImageDecodeError(i, err);
        }
        settle[i]!.resolve(result);
        opts.onProgress?.(++done, count);
      } catch (err) {
        failure ??= err;
        settle[i]!.reject(err);
      }
    }
  };
  for (let w = 0; w < concurrency; w++) void worker();
  return promises;
}

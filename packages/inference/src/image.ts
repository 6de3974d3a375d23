// From encoded image bytes to a classifier's input: decode (JPEG, PNG, WebP), turn by the EXIF orientation, force
// 3-channel 8-bit sRGB, stretch-resize to size x size (no crop, aspect ratio not kept, as Keras's
// `load_img(target_size=...)` does), then normalise per channel. Most photos are JPEGs of one common kind, which
// jpeg.ts decodes in WebAssembly on the calling thread (libjpeg-turbo's pixels, byte for byte, in about a third of
// sharp's CPU time for a small photo); the rest go through sharp, which decodes on libuv's thread pool so that the
// event loop stays free while it works. The 'triangle' resize (resize.ts) runs after either on the calling thread.
// decodeImage is the one decoder of Graft: @graft/vision trains and predicts on its pixels
// (packages/vision/src/preprocess.ts re-exports it).
import type { ErrorCode } from '@graft/contract';
import { setImmediate } from 'node:timers/promises';
import sharp from 'sharp';
import { decodeJpeg } from './jpeg';
import { withPixelKernels } from './pixel-wasm';
import { triangleResize } from './resize';

// One libvips thread per image, and no libvips operation cache, for every sharp pipeline of the process: images are
// decoded in parallel on libuv's pool instead (a request's images, a batch's, several requests'), and a decoded
// image is never asked for twice. On 2 cores, 400 Dogs vs Cats JPEGs resized to 224 px on libuv's 4 threads took
// 2.40 ms of CPU an image against 2.51 with the cache (687-752 images/s against 642 with two libvips threads an
// image); a 4000x3000 JPEG or a 2000x1500 PNG takes as long with one libvips thread as with two (63 and 43 ms).
sharp.concurrency(1);
sharp.cache(false);

/**
 * A classifier's pixel normalisation, as graft.json's `preprocessing` holds it: either (pixel - mean) / std per
 * channel, or pixel * scale + offset; in both cases channels are reordered to `channelOrder` first.
 */
export interface PixelPreprocessing {
  /** The resize filter (resizeKernelOf: 'lanczos3' where absent). */
  resizeKernel?: ResizeKernel;
  channelOrder?: 'rgb' | 'bgr';
  mean?: readonly number[];
  std?: readonly number[];
  scale?: number | readonly number[];
  offset?: number | readonly number[];
}

/** Normalisation reduced to (pixel - sub) * mul per channel, in the network's channel order. */
export interface PixelTransform {
  bgr: boolean;
  sub: [number, number, number];
  mul: [number, number, number];
}

/** An image of a request that cannot be decoded; `index` is its position among the request's images. */
export class InvalidImageError extends Error {
  readonly code = 'INVALID_IMAGE' satisfies ErrorCode;
  readonly permanent = true;
  constructor(
    readonly index: number,
    cause: unknown,
  ) {
    super(`image ${index} is not a decodable image: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'InvalidImageError';
  }
}

/**
 * The filter of the resize. A model is trained and served with one: graft.json's `preprocessing.resizeKernel`,
 * 'lanczos3' where it names none (models made before it did).
 * - 'triangle' (what training uses now, TRAINING_RESIZE_KERNEL): Pillow's BILINEAR filter, in WebAssembly
 *   (resize.ts), from the decoded pixels; an image at least twice the input size on both sides (wholeResize) is
 *   first reduced by libvips ('linear', aspect ratio kept) until its shorter side is the input size, so that a large
 *   JPEG is shrunk while it is decoded (libjpeg's scaled decoding starts at half the size). Dogs vs Cats photos (at
 *   most 320 px a side) decoded and resized to 288 px: 3.5-4.0 ms of CPU an image against 6.6-7.5 with libvips's
 *   'linear', which enlarges through its affine transform, not its SIMD reducers; a 4032x3024 JPEG takes about as
 *   long either way (15-23 ms against 14-20). Until 2026-12-07 libvips also reduced the images larger than the
 *   input size on both sides but less than twice it (12% of Dogs vs Cats photos at 288, 72% at 224): the filter
 *   now reads their pixels directly, as Pillow's resize does.
 * - 'linear' and 'lanczos3': libvips's resize with that kernel (antialiased: it widens with the reduction), what
 *   models made before 'triangle' were trained with.
 */
export const RESIZE_KERNELS = ['lanczos3', 'linear', 'triangle'] as const;
export type ResizeKernel = (typeof RESIZE_KERNELS)[number];
export const TRAINING_RESIZE_KERNEL: ResizeKernel = 'triangle';
/** The filter of a model whose preprocessing names none (models made before graft.json named it). */
const DEFAULT_RESIZE_KERNEL: ResizeKernel = 'lanczos3';

/** The resize filter a model's preprocessing names ('lanczos3' where it names none); throws on any other value. */
export function resizeKernelOf(p: { resizeKernel?: unknown }): ResizeKernel {
  const k = p.resizeKernel ?? DEFAULT_RESIZE_KERNEL;
  if (!RESIZE_KERNELS.includes(k as ResizeKernel)) {
    throw new Error(`preprocessing.resizeKernel must be one of ${RESIZE_KERNELS.join(', ')}, got ${JSON.stringify(k)}`);
  }
  return k as ResizeKernel;
}

/**
 * Decodes one image to size x size x 3 RGB bytes (row-major, channels last), resized with `kernel`: the filter of
 * the model the pixels are for (resizeKernelOf of its preprocessing, TRAINING_RESIZE_KERNEL for a new one), named by
 * every caller so that no model is served pixels resized otherwise than it was trained on. Throws on bytes that
 * are not a decodable image.
 *
 * With 'triangle', a JPEG of the common kind (jpeg.ts: baseline YCbCr, no rotation, no ICC profile) that the filter
 * resizes whole (wholeResize) is decoded in WebAssembly on the calling thread, to the same pixels as sharp's
 * (decodeWithSharp), in about a third of sharp's CPU time; every other image goes through sharp.
 */
export async function decodeImage(bytes: Uint8Array, size: number, kernel: ResizeKernel): Promise<Uint8Array> {
  if (kernel === 'triangle') {
    await loopTurn();
    const jpeg = decodeJpeg(bytes, (width, height) => wholeResize(width, height, size));
    if (jpeg) return triangleResize(jpeg.pixels, jpeg.width, jpeg.height, size);
  }
  return decodeWithSharp(bytes, size, kernel);
}

/**
 * Resolves in a later turn of the event loop than every earlier call's: the WebAssembly decodes of a request's images
 * (or a batch's) each get a turn of their own, with I/O in between, as sharp's decodes on the thread pool leave the
 * event loop free. A /predict of 64 small photos is about 90 ms of decoding here; other requests go on meanwhile.
 */
let lastTurn: Promise<void> = Promise.resolve();
function loopTurn(): Promise<void> {
  const turn = lastTurn.then(() => setImmediate());
  lastTurn = turn;
  return turn;
}

/**
 * Whether 'triangle' resizes an image of this size from all its decoded pixels: unless it is at least twice the input
 * size on both sides, where libvips shrinks it first (a JPEG while decoding it). Either way round (EXIF orientation).
 */
export function wholeResize(width: number, height: number, size: number): boolean {
  return Math.min(width, height) < 2 * size;
}

/** decodeImage with sharp for every image (the reference of the WebAssembly JPEG path, and the path of the rest). */
export async function decodeWithSharp(bytes: Uint8Array, size: number, kernel: ResizeKernel): Promise<Uint8Array> {
  const image = sharp(bytes, { failOn: 'error' })
    .rotate() // EXIF orientation
    .removeAlpha()
    .toColourspace('srgb');
  if (kernel === 'triangle') {
    const { width, height } = await image.metadata();
    if (width === undefined || height === undefined) throw new Error('the image has no size');
    if (!wholeResize(width, height, size)) image.resize(size, size, { fit: 'outside', kernel: 'linear' });
  } else {
    image.resize(size, size, { fit: 'fill', kernel });
  }
  const { data, info } = await image.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
  const pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (kernel === 'triangle') return triangleResize(pixels, info.width, info.height, size);
  if (info.width !== size || info.height !== size) throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x3`);
  return pixels;
}

/**
 * Decodes every image of a request concurrently (sharp queues them on libuv's pool). Rejects with an
 * InvalidImageError naming the first image, in request order, that cannot be decoded.
 */
export async function decodeAll(images: readonly Uint8Array[], size: number, kernel: ResizeKernel): Promise<Uint8Array[]> {
  const settled = await Promise.allSettled(images.map((b) => decodeImage(b, size, kernel)));
  return settled.map((s, i) => {
    if (s.status === 'rejected') throw new InvalidImageError(i, s.reason);
    return s.value;
  });
}

/** Decoded images normalised into one input: `batch` images, which are `indices` of the images given. */
export interface NormalizedBatch {
  input: Float32Array;
  batch: number;
  indices: number[];
}

/**
 * Decodes `images` `batch` at a time to size x size x 3 and normalises each batch into one input (channels last,
 * image after image), as a model with this transform and resize filter takes it. Images that do not decode are
 * skipped; `indices` says which came.
 */
export async function* normalizedBatches(
  images: readonly Uint8Array[],
  p: { size: number; transform: PixelTransform; kernel: ResizeKernel },
  batch: number,
): AsyncGenerator<NormalizedBatch> {
  const per = p.size * p.size * 3;
  for (let start = 0; start < images.length; start += batch) {
    const decoded = await Promise.allSettled(images.slice(start, start + batch).map((b) => decodeImage(b, p.size, p.kernel)));
    const indices: number[] = [];
    const pixels: Uint8Array[] = [];
    decoded.forEach((d, i) => {
      if (d.status === 'fulfilled') {
        indices.push(start + i);
        pixels.push(d.value);
      }
    });
    if (pixels.length === 0) continue;
    const input = new Float32Array(pixels.length * per);
    pixels.forEach((px, i) => normalizeInto(px, p.transform, input, i * per));
    yield { input, batch: pixels.length, indices };
  }
}

function triple(v: number | readonly number[] | undefined, def: number, what: string): [number, number, number] {
  if (v === undefined) return [def, def, def];
  const t = typeof v === 'number' ? [v, v, v] : [...v];
  if (t.length !== 3 || t.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
    throw new Error(`preprocessing.${what} must be a number or three numbers`);
  }
  return t as [number, number, number];
}

/** The nearest integer to `v`, halves to even (as float-to-integer rounding and ONNX's QuantizeLinear round). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Reads a manifest's preprocessing into (pixel - sub) * mul form. */
export function pixelTransform(p: PixelPreprocessing): PixelTransform {
  const bgr = p.channelOrder === 'bgr';
  if (p.scale !== undefined || p.offset !== undefined) {
    const scale = triple(p.scale, 1, 'scale');
    const offset = triple(p.offset, 0, 'offset');
    if (scale.some((s) => s === 0)) throw new Error('preprocessing.scale must not be 0');
    return { bgr, sub: [-offset[0] / scale[0], -offset[1] / scale[1], -offset[2] / scale[2]], mul: scale };
  }
  const mean = triple(p.mean, 0, 'mean');
  const std = triple(p.std, 1, 'std');
  if (std.some((s) => s === 0)) throw new Error('preprocessing.std must not be 0');
  return { bgr, sub: mean, mul: [1 / std[0], 1 / std[1], 1 / std[2]] };
}

/** Below this many values the JavaScript loop is as quick as copying in and out of WebAssembly. */
const WASM_NORMALIZE_VALUES = 3 * 1024;

/**
 * Normalises RGB pixels (0..255, channels last, any number of pixels) into `out` from `offset`: each value
 * (pixel - sub) * mul in float64, rounded to float32. `out` may be `src` itself (offset 0). The one normalisation of
 * Graft: @graft/vision's normalizePixels is this. Bytes and float32 pixels of an image's size go through
 * WebAssembly (wasm/normalize.c), which gives the same bits as the loop here.
 */
export function normalizeInto(src: ArrayLike<number>, t: PixelTransform, out: Float32Array, offset = 0): void {
  const n = src.length;
  if (n % 3 !== 0) throw new RangeError(`${n} values are not whole RGB pixels`);
  if (offset + n > out.length) throw new RangeError(`${n} values do not fit at ${offset} in ${out.length}`);
  if (n >= WASM_NORMALIZE_VALUES && (src instanceof Uint8Array || src instanceof Float32Array)) {
    normalizeWasm(src, t, out.subarray(offset, offset + n));
    return;
  }
  const { bgr } = t;
  const [m0, m1, m2] = t.sub;
  const [s0, s1, s2] = t.mul;
  for (let i = 0; i < n; i += 3) {
    const r = src[i]!;
    const g = src[i + 1]!;
    const b = src[i + 2]!;
    const o = offset + i;
    out[o] = ((bgr ? b : r) - m0) * s0;
    out[o + 1] = (g - m1) * s1;
    out[o + 2] = ((bgr ? r : b) - m2) * s2;
  }
}

/** Pixels normalised per WebAssembly call: a batch of any size goes through in pieces of at most 3 MB (float32 in and out). */
const WASM_NORMALIZE_CHUNK = 1 << 18;

function normalizeWasm(src: Uint8Array | Float32Array, t: PixelTransform, out: Float32Array): void {
  const floats = src instanceof Float32Array;
  const norm = [...t.sub, ...t.mul];
  for (let start = 0; start < src.length; start += 3 * WASM_NORMALIZE_CHUNK) {
    const part = src.subarray(start, start + 3 * WASM_NORMALIZE_CHUNK);
    withPixelKernels((k, scratch) => {
      const srcAt = scratch.take(part.byteLength + 16); // normalize_u8 reads up to 4 bytes past the last pixel
      const outAt = scratch.take(part.length * 4);
      const normAt = scratch.take(6 * 8);
      const buffer = scratch.ready();
      (floats ? new Float32Array(buffer, srcAt, part.length) : new Uint8Array(buffer, srcAt, part.length)).set(part);
      new Float64Array(buffer, normAt, 6).set(norm);
      (floats ? k.normalize_f32 : k.normalize_u8)(srcAt, outAt, part.length / 3, normAt, t.bgr ? 1 : 0);
      out.set(new Float32Array(buffer, outAt, part.length), start);
    });
  }
}

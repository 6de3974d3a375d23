// The JPEG decoder of the common case, in WebAssembly (wasm/jpeg.c): baseline YCbCr, 4:4:4, 4:2:2 or 4:2:0, one
// interleaved scan, no EXIF rotation, no ICC profile. Its pixels are libjpeg-turbo's, byte for byte (what sharp gives
// for the same file); it runs on the calling thread without sharp's per-image pipeline. Every other image, and any
// stream it finds damaged, is left to sharp: decodeJpeg answers null.
import { withPixelKernels } from './pixel-wasm';

export interface DecodedRgb {
  /** width x height x 3 bytes, row-major. */
  pixels: Uint8Array;
  width: number;
  height: number;
}

const NOT_HANDLED = 1;

/**
 * The RGB pixels of a JPEG the WebAssembly decoder takes, or null where sharp must decode it. `wanted`, given the
 * image's size from its header, may decline it (null) before anything is decoded.
 */
export function decodeJpeg(bytes: Uint8Array, wanted: (width: number, height: number) => boolean = () => true): DecodedRgb | null {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return null;
  return withPixelKernels((k, scratch) => {
    const srcAt = scratch.take(bytes.length);
    const infoAt = scratch.take(3 * 4);
    new Uint8Array(scratch.ready(), srcAt, bytes.length).set(bytes);
    if (k.jpeg_header(srcAt, bytes.length, infoAt) === NOT_HANDLED) return null;
    const [width, height, work] = new Int32Array(scratch.ready(), infoAt, 3) as unknown as [number, number, number];
    if (!wanted(width, height)) return null;
    const workAt = scratch.take(work);
    const outAt = scratch.take(width * height * 3);
    const buffer = scratch.ready();
    if (k.jpeg_decode(workAt, outAt) === NOT_HANDLED) return null;
    return { pixels: new Uint8Array(buffer, outAt, width * height * 3).slice(), width, height };
  });
}

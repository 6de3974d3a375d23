// Direct access to tensors in the wasm backend's memory, for the few kernels whose data movement no wasm
// kernel does well: an im2col gather, and loops with no fast kernel behind them.
import * as tf from '@tensorflow/tfjs';

/** The parts of the wasm backend used here: views of tensors in the module's memory, and new outputs. */
export interface HeapBackend {
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

export function asHeapBackend(backend: tf.KernelBackend): HeapBackend {
  const b = backend as unknown as Partial<HeapBackend>;
  if (typeof b.typedArrayFromHeap !== 'function' || typeof b.makeOutput !== 'function') {
    throw new Error('this kernel runs on the wasm backend only');
  }
  return b as HeapBackend;
}

/** Copies n floats; short runs are copied element by element (a subarray + set costs more than the copy). */
function copy(dst: Float32Array, dstOff: number, src: Float32Array, srcOff: number, n: number): void {
  if (n >= 48) {
    dst.set(src.subarray(srcOff, srcOff + n), dstOff);
  } else {
    for (let i = 0; i < n; i++) dst[dstOff + i] = src[srcOff + i];
  }
}

/**
 * The im2col matrix of an NHWC convolution (dilation 1) for output positions p0 <= p < p1, where p enumerates
 * (n, oh, ow) in row-major order: row p - p0 holds the KH x KW x Ci input patch that output position reads,
 * in filter order [kh][kw][ci], with zeros where the patch lies in the padding. Returns a new tensor of shape
 * [p1 - p0, KH * KW * Ci], owned by the current scope.
 */
export function im2colRows(
  x: tf.Tensor4D,
  info: tf.backend_util.Conv2DInfo,
  p0: number,
  p1: number,
  backend: HeapBackend,
): tf.Tensor2D {
  const { inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  const rowLen = kh * kw * ci;
  const runLen = kw * ci;
  const outInfo = backend.makeOutput([p1 - p0, rowLen], 'float32');
  // Views are taken after the allocation, which may have grown (and so detached) the module's memory.
  const src = backend.typedArrayFromHeap(x) as Float32Array;
  const dst = backend.typedArrayFromHeap(outInfo) as Float32Array;
  let b = Math.floor(p0 / (oh * ow));
  let r = Math.floor((p0 % (oh * ow)) / ow);
  let c = p0 % ow;
  let o = 0;
  for (let p = p0; p < p1; p++) {
    const iw0 = c * sw - left;
    const inside = iw0 >= 0 && iw0 + kw <= w;
    for (let fr = 0; fr < kh; fr++) {
      const ih = r * sh - top + fr;
      if (ih < 0 || ih >= h) {
        dst.fill(0, o, o + runLen);
      } else if (inside) {
        copy(dst, o, src, ((b * h + ih) * w + iw0) * ci, runLen);
      } else {
        for (let fc = 0; fc < kw; fc++) {
          const iw = iw0 + fc;
          if (iw < 0 || iw >= w) dst.fill(0, o + fc * ci, o + (fc + 1) * ci);
          else copy(dst, o + fc * ci, src, ((b * h + ih) * w + iw) * ci, ci);
        }
      }
      o += runLen;
    }
    if (++c === ow) {
      c = 0;
      if (++r === oh) {
        r = 0;
        b++;
      }
    }
  }
  return tf.engine().makeTensorFromTensorInfo(outInfo, backend as unknown as tf.KernelBackend) as tf.Tensor2D;
}

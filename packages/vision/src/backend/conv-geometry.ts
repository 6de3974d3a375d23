// Tensor plumbing shared by the wasm convolution-gradient kernels: wrapping kernel inputs as tensors, cropping
// and padding NHWC images, inserting zeros between pixels (the "dilation" a strided convolution's transpose
// needs), and the geometry of a transposed convolution. Every helper is built from ops the wasm backend runs
// fast: plain slice, pad of rank 3 or 4, reshape, transpose and reverse.
import * as tf from '@tensorflow/tfjs';

/**
 * A kernel input as a tensor usable with ops. Kernel inputs are tensors whenever they come through the engine;
 * a bare TensorInfo is wrapped (taking a reference on its data, so disposing the wrapper leaves the data alone).
 */
export function asTensor<R extends tf.Rank>(info: tf.TensorInfo, backend: tf.KernelBackend): tf.Tensor<R> {
  if (info instanceof tf.Tensor) return info as tf.Tensor<R>;
  const t = tf.engine().makeTensorFromTensorInfo(info, backend);
  backend.incRef(info.dataId);
  return t as tf.Tensor<R>;
}

/** Pads (positive amounts) or crops (negative amounts) the two spatial axes of an NHWC tensor. */
export function padOrCrop(x: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  let y = x;
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    const [n, h, w, c] = y.shape;
    const t0 = Math.max(0, -top);
    const l0 = Math.max(0, -left);
    y = tf.slice(y, [0, t0, l0, 0], [n, h - t0 - Math.max(0, -bottom), w - l0 - Math.max(0, -right), c]);
  }
  if (top > 0 || bottom > 0 || left > 0 || right > 0) {
    y = tf.pad(y, [
      [0, 0],
      [Math.max(0, top), Math.max(0, bottom)],
      [Math.max(0, left), Math.max(0, right)],
      [0, 0],
    ]);
  }
  return y;
}

/**
 * Inserts strideH - 1 zero rows after every row and strideW - 1 zero columns after every column of an NHWC
 * tensor: [n, h, w, c] -> [n, h * strideH, w * strideW, c] (the trailing zeros are kept). Uses only rank-3 pads
 * of reshaped views, which the wasm backend runs as plain copies.
 */
export function insertZeros(x: tf.Tensor4D, strideH: number, strideW: number): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  let y: tf.Tensor = x;
  if (strideW > 1) {
    y = tf.pad(tf.reshape(y, [n * h * w, 1, c]), [
      [0, 0],
      [0, strideW - 1],
      [0, 0],
    ]);
  }
  const wd = w * strideW;
  if (strideH > 1) {
    y = tf.pad(tf.reshape(y, [n * h, 1, wd * c]), [
      [0, 0],
      [0, strideH - 1],
      [0, 0],
    ]);
  }
  return tf.reshape(y, [n, h * strideH, wd, c]);
}

/** True where every amount of a pad is zero. */
export function noPadding(p: { top: number; bottom: number; left: number; right: number }): boolean {
  return p.top === 0 && p.bottom === 0 && p.left === 0 && p.right === 0;
}

/** The explicit padding for tf.conv2d / tf.depthwiseConv2d of an NHWC input. */
export function explicitPadding(top: number, bottom: number, left: number, right: number): ExplicitPadding {
  return [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
}

/** Per-axis [before, after] padding of an NHWC tensor, as tf.conv2d accepts it. */
export type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];


/** What the forward convolution looked like, as backend_util.computeConv2DInfo reports it. */
export interface ForwardGeometry {
  inHeight: number;
  inWidth: number;
  outHeight: number;
  outWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  effectiveFilterHeight: number;
  effectiveFilterWidth: number;
  padInfo: { top: number; bottom: number; left: number; right: number };
}

/**
 * The gradient of a convolution with respect to its input, written as a stride-1 correlation: dy with zeros
 * inserted between its pixels (stride > 1), padded so that a 'valid' correlation with the spatially flipped
 * filter (same dilation) gives exactly inHeight x inWidth outputs. Returns that padded dy and nothing else; the
 * caller runs the correlation with the filter it prepared. Negative amounts (explicit pads larger than the
 * filter) are cropped away here, so the result can always be used with 'valid' padding, or, where every
 * amount is >= 0, the returned `pad` can be handed to the correlation instead of materialising the padding.
 */
export function transposedConvInput(
  dy: tf.Tensor4D,
  g: ForwardGeometry,
): { dy: tf.Tensor4D; pad: { top: number; bottom: number; left: number; right: number } } {
  const spread = g.strideHeight > 1 || g.strideWidth > 1 ? insertZeros(dy, g.strideHeight, g.strideWidth) : dy;
  const rows = spread.shape[1];
  const cols = spread.shape[2];
  const top = g.effectiveFilterHeight - 1 - g.padInfo.top;
  const left = g.effectiveFilterWidth - 1 - g.padInfo.left;
  const bottom = g.inHeight + g.effectiveFilterHeight - 1 - top - rows;
  const right = g.inWidth + g.effectiveFilterWidth - 1 - left - cols;
  if (top >= 0 && bottom >= 0 && left >= 0 && right >= 0) {
    return { dy: spread, pad: { top, bottom, left, right } };
  }
  return { dy: padOrCrop(spread, top, bottom, left, right), pad: { top: 0, bottom: 0, left: 0, right: 0 } };
}

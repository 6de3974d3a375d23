// Conv2DBackpropFilter and Conv2DBackpropInput for the wasm backend, written as forward convolutions and matrix
// products that XNNPACK runs fast.
//
// Filter gradient: dW[kh, kw, ci, co] = sum over (n, oh, ow) of xpad[n, oh*s + kh, ow*s + kw, ci] * dy[n, oh, ow, co].
// Two ways, chosen by layer width (both measured in bench/wasm-kernels.ts, with the slower alternatives: an
// im2col from slice + concat, and one matMul per filter tap):
//  - im2col: transpose(im2col(x)) x dy2d, with im2col(x) the [N*OH*OW, KH*KW*Ci] matrix of input patches,
//    gathered by one loop over the backend's memory (wasm-heap.ts), transposed explicitly and multiplied by
//    XNNPACK, in chunks of rows that keep the buffers small;
//  - conv: one forward convolution of x, its channels read as the batch, by dy read as the filter (below).
// 1x1 filters with stride 1 and no padding are a single matMul.
//
// Input gradient: the correlation of dy, with stride - 1 zeros inserted between pixels and padded by
// (filter - 1 - pad), with the spatially flipped filter whose in and out channels are swapped; 1x1 filters with
// stride 1 and no padding are a single matMul with the transposed filter.
import * as tf from '@tensorflow/tfjs';
import type { KernelArgs } from './kernel-args';
import { asTensor, explicitPadding, noPadding, padOrCrop, transposedConvInput } from './conv-geometry';
import { type HeapBackend, asHeapBackend, im2colRows } from './wasm-heap';

const toNHWC = (t: tf.Tensor4D): tf.Tensor4D => tf.transpose(t, [0, 2, 3, 1]);
const toNCHW = (t: tf.Tensor4D): tf.Tensor4D => tf.transpose(t, [0, 3, 1, 2]);

/** Conv2DBackpropFilter: inputs {x, dy}, attrs {strides, pad, dataFormat, dimRoundingMode, filterShape}. */
export function conv2DBackpropFilter(args: KernelArgs<tf.Conv2DBackpropFilterAttrs>): tf.TensorInfo {
  const { inputs, backend } = args;
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs as tf.Conv2DBackpropFilterAttrs;
  return tf.tidy(() => {
    let x = asTensor<tf.Rank.R4>(inputs.x, backend);
    let dy = asTensor<tf.Rank.R4>(inputs.dy, backend);
    if (dataFormat === 'NCHW') {
      x = toNHWC(x);
      dy = toNHWC(dy);
    }
    const info = tf.backend_util.computeConv2DInfo(
      x.shape, filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast',
    );
    return filterGradient(x, dy, info, asHeapBackend(backend));
  });
}

/** How a filter gradient is computed: im2col + matMul, or one forward convolution (see below). */
export type FilterGradMethod = 'im2col' | 'conv';

/** Rows of the im2col matrix per matrix product: keeps each chunk's buffers near 16 MB. */
const IM2COL_CHUNK_FLOATS = 1 << 22;

/** dW of an NHWC convolution (dilation 1) as described at the top of this file. */
export function filterGradient(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  info: tf.backend_util.Conv2DInfo,
  backend: HeapBackend,
  opts: { method?: FilterGradMethod; chunkFloats?: number } = {},
): tf.Tensor4D {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co } = info;
  const { outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const rows = n * oh * ow;
  const dy2 = tf.reshape(dy, [rows, co]);
  if (kh === 1 && kw === 1 && sh === 1 && sw === 1 && noPadding(info.padInfo)) {
    const x2 = tf.reshape(x, [n * h * w, ci]);
    return tf.reshape(tf.matMul(tf.transpose(x2), dy2), [1, 1, ci, co]);
  }
  // Measured (bench/wasm-kernels.ts): the convolution wins for narrow layers at stride 1, im2col otherwise.
  const method = opts.method ?? (sh === 1 && sw === 1 && ci * co <= 64 * 64 ? 'conv' : 'im2col');
  if (method === 'conv') return filterGradientByConv(x, dy, info);
  const rowLen = kh * kw * ci;
  const chunk = Math.max(1, Math.floor((opts.chunkFloats ?? IM2COL_CHUNK_FLOATS) / Math.max(rowLen, co)));
  let sum: tf.Tensor2D | null = null;
  for (let p0 = 0; p0 < rows; p0 += chunk) {
    const p1 = Math.min(rows, p0 + chunk);
    const part = tf.tidy(() => {
      const cols = im2colRows(x, info, p0, p1, backend);
      const dyRows = p0 === 0 && p1 === rows ? dy2 : tf.slice(dy2, [p0, 0], [p1 - p0, co]);
      return tf.matMul(tf.transpose(cols), dyRows) as tf.Tensor2D;
    });
    if (sum === null) {
      sum = part;
    } else {
      const next = tf.add(sum, part) as tf.Tensor2D;
      tf.dispose([sum, part]);
      sum = next;
    }
  }
  return tf.reshape(sum as tf.Tensor2D, [kh, kw, ci, co]);
}

/**
 * dW as one forward convolution: padded x with its channels read as the batch and its batch as channels,
 * [Ci, rows, cols, N], correlated with dy read as an [OH, OW, N, Co] filter at dilation = stride, gives
 * [Ci, KH, KW, Co]. No im2col buffer; XNNPACK's inner loop runs over N, so this wins for narrow layers.
 */
export function filterGradientByConv(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { inHeight: h, inWidth: w, outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw } = info;
  // The rows/columns of padded x that some output reads: exactly (out - 1) * stride + filter of them.
  const rows = (oh - 1) * sh + kh;
  const cols = (ow - 1) * sw + kw;
  const { top, left } = info.padInfo;
  const xp = padOrCrop(x, top, rows - h - top, left, cols - w - left);
  const xT = tf.transpose(xp, [3, 1, 2, 0]); // [Ci, rows, cols, N]
  const dyT = tf.transpose(dy, [1, 2, 0, 3]); // [OH, OW, N, Co]
  const g = tf.conv2d(xT, dyT, 1, 'valid', 'NHWC', [sh, sw]); // [Ci, KH, KW, Co]
  return tf.transpose(g, [1, 2, 0, 3]);
}

/** Conv2DBackpropInput: inputs {dy, filter}, attrs {strides, pad, dataFormat, dimRoundingMode, inputShape}. */
export function conv2DBackpropInput(args: KernelArgs<tf.Conv2DBackpropInputAttrs>): tf.TensorInfo {
  const { inputs, backend } = args;
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = args.attrs as tf.Conv2DBackpropInputAttrs;
  return tf.tidy(() => {
    let dy = asTensor<tf.Rank.R4>(inputs.dy, backend);
    const filter = asTensor<tf.Rank.R4>(inputs.filter, backend);
    const nchw = dataFormat === 'NCHW';
    const shape: [number, number, number, number] = nchw
      ? [inputShape[0], inputShape[2], inputShape[3], inputShape[1]]
      : inputShape;
    if (nchw) dy = toNHWC(dy);
    const info = tf.backend_util.computeConv2DInfo(
      shape, filter.shape, strides, 1, pad, dimRoundingMode, false, 'channelsLast',
    );
    const dx = inputGradient(dy, filter, info);
    return nchw ? toNCHW(dx) : dx;
  });
}

/** dx of an NHWC convolution (dilation 1) as described at the top of this file. */
export function inputGradient(dy: tf.Tensor4D, filter: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
  if (kh === 1 && kw === 1 && sh === 1 && sw === 1 && noPadding(info.padInfo)) {
    const dy2 = tf.reshape(dy, [n * oh * ow, co]);
    const wT = tf.transpose(tf.reshape(filter, [ci, co]));
    return tf.reshape(tf.matMul(dy2, wT), [n, h, w, ci]);
  }
  const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]); // [KH, KW, Co, Ci]
  const t = transposedConvInput(dy, info);
  const p = t.pad;
  return tf.conv2d(t.dy, flipped, 1, noPadding(p) ? 'valid' : explicitPadding(p.top, p.bottom, p.left, p.right));
}

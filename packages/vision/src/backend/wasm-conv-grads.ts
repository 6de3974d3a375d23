// Conv2DBackpropFilter and Conv2DBackpropInput for the wasm backend, written as forward convolutions and matrix
// products that XNNPACK runs fast.
//
// Filter gradient: dW[kh, kw, ci, co] = sum over (n, oh, ow) of xpad[n, oh*s + kh, ow*s + kw, ci] * dy[n, oh, ow, co].
// Reading the channels of x as a batch and the batch as channels, this is one 'valid' forward convolution of
// x' = xpad transposed to [Ci, H, W, N] with the "filter" dy' = dy transposed to [OH, OW, N, Co] and dilation s,
// giving [Ci, KH, KW, Co]. It costs the same multiply-adds as the forward convolution and needs no im2col
// buffer (bench/wasm-kernels.ts compares it with im2col + one matMul and with one matMul per filter tap).
// 1x1 filters with stride 1 and no padding are a single matMul.
//
// Input gradient: the correlation of dy, with stride - 1 zeros inserted between pixels and padded by
// (filter - 1 - pad), with the spatially flipped filter whose in and out channels are swapped; 1x1 filters with
// stride 1 and no padding are a single matMul with the transposed filter.
import * as tf from '@tensorflow/tfjs';
import { asTensor, explicitPadding, noPadding, padOrCrop, transposedConvInput } from './conv-geometry';

type KernelArgs<A> = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: A };

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
    return filterGradient(x, dy, info);
  });
}

/** dW of an NHWC convolution (dilation 1) as described at the top of this file. */
export function filterGradient(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co } = info;
  const { outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  if (kh === 1 && kw === 1 && sh === 1 && sw === 1 && noPadding(info.padInfo)) {
    const x2 = tf.reshape(x, [n * h * w, ci]);
    const dy2 = tf.reshape(dy, [n * oh * ow, co]);
    return tf.reshape(tf.matMul(tf.transpose(x2), dy2), [1, 1, ci, co]);
  }
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

// Weight-gradient kernels for the TensorFlow.js webgpu backend (@tensorflow/tfjs-backend-webgpu 4.22). The stock
// Conv2DBackpropFilter and DepthwiseConv2dNativeBackpropFilter give each filter element one GPU thread that loops
// over every output pixel of the batch: a few hundred threads, each summing hundreds of thousands of products,
// where a layer is wide in pixels and narrow in channels. Measured on an NVIDIA H200 (../shared/gpu/README.md):
// Conv2DBackpropFilter 1x1 at 32x112x112x48 169 ms against 4.5 ms for the same sum as one matMul; the depthwise
// filter gradient 3x3 there 157 ms against 12.5 ms as 9 shifted products summed, but at 64x7x7x768 the stock
// kernel is faster (0.96 ms against 8.8 ms: each op costs about 0.36 ms of dispatch there).
//
// So, for backend 'webgpu':
//  - Conv2DBackpropFilter with a 1x1 filter, stride 1 and no padding: one matMul(x^T, dy), whose split-K program
//    spreads the long sum over many threads;
//  - other filters, and the depthwise filter gradient, where the layer has at least MIN_ROWS_FOR_TAPS output
//    pixels in the batch: one term per filter tap, the input shifted by that tap (a slice of the padded input,
//    strided like the convolution) against dy: a matMul(x_tap^T, dy) for a convolution, and for a depthwise one
//    the elementwise product x_tap * dy summed over pixels by a matMul with a row of ones;
//  - everything else (fewer pixels, NCHW): the stock kernel.
import * as tf from '@tensorflow/tfjs';
import type { KernelArgs, StockKernel } from './kernel-args';
import { asTensor, noPadding, padOrCrop } from './conv-geometry';
import { install, isOurs, requireStock } from './kernel-registry';

const BACKEND = 'webgpu';

/** The kernel names this module replaces on the webgpu backend. */
export const WEBGPU_TRAINING_KERNELS = ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter'] as const;

/**
 * Output pixels (batch x height x width) from which the per-tap sums beat the stock kernel. Between the two H200
 * measurements above: the stock kernel's time grows with the pixels (about 0.4 us each), the taps' stays near
 * 10 ms of dispatches, so they cross near 25,000 pixels.
 */
export const MIN_ROWS_FOR_TAPS = 16_384;

/** How a filter gradient is computed here: 'taps' (the sums above) or 'stock' (the backend's own kernel). */
export type WebGpuGradMethod = 'taps' | 'stock';

/** The way a layer of this geometry is computed (see the top of this file). */
export function filterGradMethod(info: tf.backend_util.Conv2DInfo): WebGpuGradMethod {
  return info.batchSize * info.outHeight * info.outWidth >= MIN_ROWS_FOR_TAPS ? 'taps' : 'stock';
}

/**
 * The input pixels that filter tap (row, col) meets for every output pixel, as [rows, channels] with rows =
 * batch x outHeight x outWidth: a strided slice of xp, the input padded (or cropped) to exactly the rows and
 * columns the convolution reads.
 */
function tapInput(xp: tf.Tensor4D, info: tf.backend_util.Conv2DInfo, row: number, col: number): tf.Tensor2D {
  const { batchSize: n, outHeight: oh, outWidth: ow, inChannels: c } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const r0 = row * dh;
  const c0 = col * dw;
  const t =
    sh === 1 && sw === 1
      ? tf.slice(xp, [0, r0, c0, 0], [n, oh, ow, c])
      : tf.stridedSlice(xp, [0, r0, c0, 0], [n, r0 + (oh - 1) * sh + 1, c0 + (ow - 1) * sw + 1, c], [1, sh, sw, 1]);
  return tf.reshape(t, [n * oh * ow, c]);
}

/** x padded (or cropped) to the (out - 1) * stride + effective filter rows and columns that outputs read. */
function readWindow(x: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const rows = (info.outHeight - 1) * info.strideHeight + info.effectiveFilterHeight;
  const cols = (info.outWidth - 1) * info.strideWidth + info.effectiveFilterWidth;
  const { top, left } = info.padInfo;
  return padOrCrop(x, top, rows - info.inHeight - top, left, cols - info.inWidth - left);
}

/** dW of an NHWC convolution as one matMul (1x1, stride 1, no padding) or one matMul per filter tap. */
export function convFilterGradient(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { batchSize: n, outHeight: oh, outWidth: ow, inChannels: ci, outChannels: co } = info;
  const { filterHeight: kh, filterWidth: kw } = info;
  const dy2 = tf.reshape(dy, [n * oh * ow, co]);
  const xp = readWindow(x, info);
  const taps: tf.Tensor2D[] = [];
  for (let r = 0; r < kh; r++) {
    for (let c = 0; c < kw; c++) taps.push(tf.matMul(tapInput(xp, info, r, c), dy2, true, false));
  }
  return tf.reshape(taps.length === 1 ? taps[0]! : tf.stack(taps), [kh, kw, ci, co]);
}

/** dW of an NHWC depthwise convolution (any channel multiplier) as a sum over pixels per filter tap. */
export function depthwiseFilterGradient(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { batchSize: n, outHeight: oh, outWidth: ow, inChannels: c, outChannels: cm } = info;
  const { filterHeight: kh, filterWidth: kw } = info;
  const rows = n * oh * ow;
  const m = cm / c;
  const dy2 = m === 1 ? tf.reshape(dy, [rows, c]) : tf.reshape(dy, [rows, c, m]);
  const ones = tf.ones([1, rows]);
  const xp = readWindow(x, info);
  const taps: tf.Tensor2D[] = [];
  for (let r = 0; r < kh; r++) {
    for (let col = 0; col < kw; col++) {
      const xt = tapInput(xp, info, r, col);
      const prod = m === 1 ? tf.mul(xt, dy2) : tf.reshape(tf.mul(tf.reshape(xt, [rows, c, 1]), dy2), [rows, cm]);
      taps.push(tf.matMul(ones, prod));
    }
  }
  return tf.reshape(taps.length === 1 ? taps[0]! : tf.concat(taps, 0), [kh, kw, c, m]);
}

function makeConv2DBackpropFilter(stock: StockKernel) {
  return (args: KernelArgs<tf.NamedAttrMap>): tf.TensorInfo | tf.TensorInfo[] => {
    const { inputs, backend } = args;
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
    if (dataFormat === 'NCHW') return stock(args);
    const info = tf.backend_util.computeConv2DInfo(
      inputs.x!.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false,
      'channelsLast',
    );
    const pointwise = info.filterHeight === 1 && info.filterWidth === 1 && info.strideHeight === 1 && info.strideWidth === 1;
    if (!(pointwise && noPadding(info.padInfo)) && filterGradMethod(info) === 'stock') return stock(args);
    return tf.tidy(() =>
      convFilterGradient(asTensor<tf.Rank.R4>(inputs.x!, backend), asTensor<tf.Rank.R4>(inputs.dy!, backend), info),
    );
  };
}

function makeDepthwiseBackpropFilter(stock: StockKernel) {
  return (args: KernelArgs<tf.NamedAttrMap>): tf.TensorInfo | tf.TensorInfo[] => {
    const { inputs, backend } = args;
    const { strides, dilations, pad, dimRoundingMode, filterShape } =
      args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
    const info = tf.backend_util.computeConv2DInfo(
      inputs.x!.shape as [number, number, number, number], filterShape, strides, dilations ?? 1, pad, dimRoundingMode,
      true, 'channelsLast',
    );
    if (filterGradMethod(info) === 'stock') return stock(args);
    return tf.tidy(() =>
      depthwiseFilterGradient(asTensor<tf.Rank.R4>(inputs.x!, backend), asTensor<tf.Rank.R4>(inputs.dy!, backend), info),
    );
  };
}

/** Registers the kernels above for 'webgpu' (idempotent; needs @tensorflow/tfjs-backend-webgpu imported). */
export function registerWebGpuTrainingKernels(): void {
  install('Conv2DBackpropFilter', BACKEND, (stock) =>
    makeConv2DBackpropFilter(requireStock('Conv2DBackpropFilter', BACKEND, stock)) as unknown as tf.KernelFunc,
  );
  install('DepthwiseConv2dNativeBackpropFilter', BACKEND, (stock) =>
    makeDepthwiseBackpropFilter(
      requireStock('DepthwiseConv2dNativeBackpropFilter', BACKEND, stock),
    ) as unknown as tf.KernelFunc,
  );
}

/** True where every kernel of WEBGPU_TRAINING_KERNELS is the one registered by registerWebGpuTrainingKernels. */
export function webGpuTrainingKernelsRegistered(): boolean {
  return WEBGPU_TRAINING_KERNELS.every((name) => isOurs(name, BACKEND));
}

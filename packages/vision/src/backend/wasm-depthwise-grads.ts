// DepthwiseConv2dNativeBackpropFilter and DepthwiseConv2dNativeBackpropInput for the wasm backend (NHWC, any
// channel multiplier, strides, dilations, 'same' / 'valid' / explicit padding).
//
// Input gradient: a forward depthwise correlation (XNNPACK) of dy, with stride - 1 zeros inserted between
// pixels and padded by (effective filter - 1 - pad), with the spatially flipped filter at the same dilation.
// With a channel multiplier m the filter is read as one of multiplier 1 over the c*m channels of dy, and the m
// outputs of each input channel are summed.
//
// Filter gradient: dW[kh, kw, c, q] = sum over (n, oh, ow) of x[n, oh*s + kh*d - pad, ow*s + kw*d - pad, c] *
// dy[n, oh, ow, c*m + q]. This is a per-channel reduction with no contraction across channels, so it maps onto
// no fast wasm kernel: a depthwise correlation of x with dy as the filter has a filter of OH x OW taps, which
// XNNPACK runs on a slow generic path (bench/wasm-kernels.ts measures it), and an im2col + multiply + reduce
// moves K times the data through transposes. It is computed here by a loop over the backend's memory, in
// float64 accumulators, reading x and dy in place.
import * as tf from '@tensorflow/tfjs';
import type { KernelArgs } from './kernel-args';
import { asTensor, explicitPadding, noPadding, transposedConvInput } from './conv-geometry';
import { asHeapBackend } from './wasm-heap';


/** DepthwiseConv2dNativeBackpropInput: inputs {dy, filter}, attrs {strides, dilations, pad, dimRoundingMode, inputShape}. */
export function depthwiseConv2dNativeBackpropInput(
  args: KernelArgs<tf.DepthwiseConv2dNativeBackpropInputAttrs>,
): tf.TensorInfo {
  const { inputs, backend } = args;
  const { strides, dilations, pad, dimRoundingMode, inputShape } =
    args.attrs as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  return tf.tidy(() => {
    const dy = asTensor<tf.Rank.R4>(inputs.dy, backend);
    const filter = asTensor<tf.Rank.R4>(inputs.filter, backend);
    const info = tf.backend_util.computeConv2DInfo(
      inputShape, filter.shape, strides, dilations ?? 1, pad, dimRoundingMode, true, 'channelsLast',
    );
    const [kh, kw, c, m] = filter.shape;
    const t = transposedConvInput(dy, info);
    const p = t.pad;
    const padding = noPadding(p) ? 'valid' : explicitPadding(p.top, p.bottom, p.left, p.right);
    const dilation: [number, number] = [info.dilationHeight, info.dilationWidth];
    let flipped = tf.reverse(filter, [0, 1]);
    if (m > 1) flipped = tf.reshape(flipped, [kh, kw, c * m, 1]);
    const out = tf.depthwiseConv2d(t.dy, flipped, 1, padding, 'NHWC', dilation);
    if (m === 1) return out;
    const [n, h, w] = out.shape;
    return tf.sum(tf.reshape(out, [n, h, w, c, m]), 4);
  });
}

/** DepthwiseConv2dNativeBackpropFilter: inputs {x, dy}, attrs {strides, dilations, pad, dimRoundingMode, filterShape}. */
export function depthwiseConv2dNativeBackpropFilter(
  args: KernelArgs<tf.DepthwiseConv2dNativeBackpropFilterAttrs>,
): tf.TensorInfo {
  const { inputs } = args;
  const backend = asHeapBackend(args.backend);
  const { strides, dilations, pad, dimRoundingMode, filterShape } =
    args.attrs as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  const { x, dy } = inputs;
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error(`DepthwiseConv2dNativeBackpropFilter on wasm needs float32 inputs, got ${x.dtype} and ${dy.dtype}`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filterShape, strides, dilations ?? 1, pad, dimRoundingMode, true,
    'channelsLast',
  );
  const acc = new Float64Array(tf.util.sizeFromShape(filterShape));
  depthwiseFilterGradInto(
    acc,
    backend.typedArrayFromHeap(x) as Float32Array,
    backend.typedArrayFromHeap(dy) as Float32Array,
    info,
  );
  // Allocating may grow the module's memory and detach earlier views: take the output's view afterwards.
  const out = backend.makeOutput(filterShape, 'float32');
  (backend.typedArrayFromHeap(out) as Float32Array).set(acc);
  return out;
}

/**
 * acc[kh, kw, c, q] += sum over (n, oh, ow) of x[n, ih, iw, c] * dy[n, oh, ow, c*m + q] with
 * ih = oh*strideH + kh*dilationH - padTop (and likewise for columns), skipping taps that fall in the padding.
 */
export function depthwiseFilterGradInto(
  acc: Float64Array,
  x: Float32Array,
  dy: Float32Array,
  info: tf.backend_util.Conv2DInfo,
): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outChannels: cm } = info;
  const { outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const { top, left } = info.padInfo;
  const m = cm / c;
  const c4 = c - (c % 4);
  for (let b = 0; b < n; b++) {
    for (let yr = 0; yr < oh; yr++) {
      for (let yc = 0; yc < ow; yc++) {
        const dyOff = ((b * oh + yr) * ow + yc) * cm;
        for (let fr = 0; fr < kh; fr++) {
          const xr = yr * sh + fr * dh - top;
          if (xr < 0 || xr >= h) continue;
          for (let fc = 0; fc < kw; fc++) {
            const xc = yc * sw + fc * dw - left;
            if (xc < 0 || xc >= w) continue;
            const xOff = ((b * h + xr) * w + xc) * c;
            const aOff = (fr * kw + fc) * cm;
            if (m === 1) {
              let k = 0;
              for (; k < c4; k += 4) {
                acc[aOff + k] += x[xOff + k] * dy[dyOff + k];
                acc[aOff + k + 1] += x[xOff + k + 1] * dy[dyOff + k + 1];
                acc[aOff + k + 2] += x[xOff + k + 2] * dy[dyOff + k + 2];
                acc[aOff + k + 3] += x[xOff + k + 3] * dy[dyOff + k + 3];
              }
              for (; k < c; k++) acc[aOff + k] += x[xOff + k] * dy[dyOff + k];
            } else {
              for (let k = 0; k < c; k++) {
                const xv = x[xOff + k];
                const base = k * m;
                for (let q = 0; q < m; q++) acc[aOff + base + q] += xv * dy[dyOff + base + q];
              }
            }
          }
        }
      }
    }
  }
}

// MaxPoolGrad for the wasm backend as one loop over the backend's memory. The stock kernel spends ~30 ns per
// input element (0.7 s for the [32, 148, 148, 32] activation of the small convnet's first block, a third of its
// training step); this loop spends a few. Semantics as the cpu backend's: each output's gradient goes to the
// first maximum of its window (row-major), windows that overlap add up, padding never wins.
import * as tf from '@tensorflow/tfjs';
import type { KernelArgs, StockKernel } from './kernel-args';
import { asHeapBackend } from './wasm-heap';

export function makeMaxPoolGrad(stock: StockKernel) {
  return function maxPoolGrad(args: KernelArgs<tf.MaxPoolGradAttrs>): tf.TensorInfo {
    const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs as tf.MaxPoolGradAttrs;
    if (input.dtype !== 'float32' || dy.dtype !== 'float32' || input.shape.length !== 4) {
      return stock(args as unknown as KernelArgs<tf.NamedAttrMap>) as tf.TensorInfo;
    }
    const info = tf.backend_util.computePool2DInfo(
      input.shape as [number, number, number, number],
      filterSize,
      strides,
      1,
      pad,
      dimRoundingMode,
    );
    const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
    const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
    const { top, left } = info.padInfo;
    const backend = asHeapBackend(args.backend);
    const out = backend.makeOutput(input.shape, 'float32');
    // Views are taken after the allocation, which may have grown (and so detached) the module's memory.
    const x = backend.typedArrayFromHeap(input) as Float32Array;
    const g = backend.typedArrayFromHeap(dy) as Float32Array;
    const dx = backend.typedArrayFromHeap(out) as Float32Array;
    dx.fill(0);
    for (let b = 0; b < n; b++) {
      const xb = b * h * w * c;
      for (let r = 0; r < oh; r++) {
        const r0 = Math.max(0, r * sh - top);
        const r1 = Math.min(h, r * sh - top + fh);
        for (let q = 0; q < ow; q++) {
          const q0 = Math.max(0, q * sw - left);
          const q1 = Math.min(w, q * sw - left + fw);
          const go = ((b * oh + r) * ow + q) * c;
          for (let ch = 0; ch < c; ch++) {
            let best = -Infinity;
            let at = -1;
            for (let i = r0; i < r1; i++) {
              let p = xb + (i * w + q0) * c + ch;
              for (let j = q0; j < q1; j++, p += c) {
                const v = x[p]!;
                if (v > best || at < 0) {
                  best = v;
                  at = p;
                }
              }
            }
            if (at >= 0) dx[at] += g[go + ch]!;
          }
        }
      }
    }
    return out;
  };
}

// Sum and Mean for the wasm backend when the reduced axes are one contiguous block that leaves the last axis
// alone, e.g. [0, 1, 2] of an NHWC tensor (bias and batch-normalisation gradients, batch moments) or [1, 2]
// (global average pooling). The stock kernels first transpose the reduced axes innermost, which costs more
// than the reduction; here the rows are added in place, in float64 accumulators. Other reductions, and
// non-float32 tensors, go to the stock kernels.
import * as tf from '@tensorflow/tfjs';
import { asHeapBackend } from './wasm-heap';
import type { KernelArgs, StockKernel } from './kernel-args';

interface ReduceAttrs {
  axis: number | number[];
  keepDims: boolean;
}

/** The block [first, last] of reduced axes where the reduction can be done in place, or null. */
function leadingBlock(shape: number[], axis: number | number[]): [number, number] | null {
  const axes = [...new Set(tf.util.parseAxisParam(axis, shape))].sort((a, b) => a - b);
  if (axes.length === 0) return null;
  const first = axes[0];
  const last = axes[axes.length - 1];
  if (last - first + 1 !== axes.length || last === shape.length - 1) return null;
  return [first, last];
}

function makeReduce(stock: StockKernel, mean: boolean) {
  return function reduce(args: KernelArgs<ReduceAttrs>): tf.TensorInfo {
    const { x } = args.inputs;
    const { axis, keepDims } = args.attrs as ReduceAttrs;
    const block = x.dtype === 'float32' ? leadingBlock(x.shape, axis) : null;
    if (!block || tf.util.sizeFromShape(x.shape) === 0) {
      return stock(args as unknown as KernelArgs<tf.NamedAttrMap>) as tf.TensorInfo;
    }
    const [first, last] = block;
    const shape = x.shape;
    const outer = tf.util.sizeFromShape(shape.slice(0, first));
    const rows = tf.util.sizeFromShape(shape.slice(first, last + 1));
    const cols = tf.util.sizeFromShape(shape.slice(last + 1));
    const outShape = keepDims
      ? shape.map((d, i) => (i >= first && i <= last ? 1 : d))
      : [...shape.slice(0, first), ...shape.slice(last + 1)];
    const backend = asHeapBackend(args.backend);
    const out = backend.makeOutput(outShape, 'float32');
    const src = backend.typedArrayFromHeap(x) as Float32Array;
    const dst = backend.typedArrayFromHeap(out) as Float32Array;
    const acc = new Float64Array(cols);
    const scale = mean ? 1 / rows : 1;
    for (let o = 0; o < outer; o++) {
      acc.fill(0);
      let off = o * rows * cols;
      let r = 0;
      // Four rows at a time: a quarter of the accumulator updates.
      for (; r + 4 <= rows; r += 4, off += 4 * cols) {
        const o1 = off + cols;
        const o2 = o1 + cols;
        const o3 = o2 + cols;
        for (let c = 0; c < cols; c++) acc[c] += src[off + c] + src[o1 + c] + (src[o2 + c] + src[o3 + c]);
      }
      for (; r < rows; r++, off += cols) {
        for (let c = 0; c < cols; c++) acc[c] += src[off + c];
      }
      const base = o * cols;
      for (let c = 0; c < cols; c++) dst[base + c] = acc[c] * scale;
    }
    return out;
  };
}

/** A Sum kernel function that reduces leading/middle axes in place and calls `stock` otherwise. */
export const makeSum = (stock: StockKernel) => makeReduce(stock, false);

/** A Mean kernel function that reduces leading/middle axes in place and calls `stock` otherwise. */
export const makeMean = (stock: StockKernel) => makeReduce(stock, true);

// BatchMatMul and _FusedMatMul for the wasm backend, routed onto its fast path. The stock kernel hands a single
// [M, K] x [K, N] product without transposes to XNNPACK's fully-connected operator and everything else
// (transposeA, transposeB, a batch of products) to a scalar triple loop that is 10-20x slower. Here the
// transposes are done explicitly first (a memory-bound copy), a broadcast right operand is folded into the rows
// of the left one, and large batches are split into single products.
import * as tf from '@tensorflow/tfjs';
import { asTensor } from './conv-geometry';
import type { KernelArgs, StockKernel } from './kernel-args';


/** Below this many multiply-adds per product, a batch runs in one stock call (per-product overhead dominates). */
const SPLIT_MIN_MACS = 32 * 32 * 32;

const swapLast = (rank: number): number[] => [...Array(rank - 2).keys(), rank - 1, rank - 2];

/** Runs a stock wasm kernel on tensors and wraps its output as a tensor owned by the current scope. */
function runStock(stock: StockKernel, inputs: Record<string, tf.TensorInfo>, backend: tf.KernelBackend, attrs: tf.NamedAttrMap) {
  const out = stock({ inputs, backend, attrs }) as tf.TensorInfo;
  return tf.engine().makeTensorFromTensorInfo(out, backend);
}

/** A BatchMatMul kernel function that calls `stock` only on the shapes it runs fast. */
export function makeBatchMatMul(stock: StockKernel) {
  return function batchMatMul(args: KernelArgs<tf.BatchMatMulAttrs>): tf.TensorInfo {
    const { inputs, backend } = args;
    const { transposeA, transposeB } = args.attrs as tf.BatchMatMulAttrs;
    const { a, b } = inputs;
    const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
    if (!transposeA && !transposeB && batchA === 1 && batchB === 1) {
      return stock({ inputs, backend, attrs: { transposeA: false, transposeB: false } }) as tf.TensorInfo;
    }
    return tf.tidy(() => {
      let at = asTensor(a, backend);
      let bt = asTensor(b, backend);
      if (transposeA) at = tf.transpose(at, swapLast(at.rank));
      if (transposeB) bt = tf.transpose(bt, swapLast(bt.rank));
      const plain = { transposeA: false, transposeB: false };
      const [m, k] = at.shape.slice(-2);
      const n = bt.shape[bt.rank - 1];
      const outShape = [
        ...tf.broadcast_util.assertAndGetBroadcastShape(at.shape.slice(0, -2), bt.shape.slice(0, -2)),
        m,
        n,
      ];
      if (batchA === 1 && batchB === 1) {
        return tf.reshape(runStock(stock, { a: at, b: bt }, backend, plain), outShape);
      }
      if (batchB === 1) {
        // The same right operand for every left matrix: one product with the batch folded into the rows.
        const prod = runStock(
          stock, { a: tf.reshape(at, [1, batchA * m, k]), b: tf.reshape(bt, [1, k, n]) }, backend, plain,
        );
        return tf.reshape(prod, outShape);
      }
      const sameBatch = batchA === batchB && tf.util.arraysEqual(at.shape.slice(0, -2), bt.shape.slice(0, -2));
      if ((sameBatch || batchA === 1) && m * k * n >= SPLIT_MIN_MACS) {
        const a3 = tf.reshape(at, [batchA, m, k]);
        const b3 = tf.reshape(bt, [batchB, k, n]);
        const parts: tf.Tensor[] = [];
        for (let i = 0; i < batchB; i++) {
          const ai = batchA === 1 ? a3 : tf.slice(a3, [i, 0, 0], [1, m, k]);
          const bi = tf.slice(b3, [i, 0, 0], [1, k, n]);
          parts.push(runStock(stock, { a: ai, b: bi }, backend, plain));
        }
        return tf.reshape(tf.concat(parts, 0), outShape);
      }
      // Small products or general broadcasting: the stock loop, on operands that are now contiguous.
      return runStock(stock, { a: at, b: bt }, backend, plain);
    });
  };
}

/** A _FusedMatMul kernel function that transposes operands explicitly before calling `stock`. */
export function makeFusedMatMul(stock: StockKernel) {
  return function fusedMatMul(args: KernelArgs<tf.NamedAttrMap>): tf.TensorInfo {
    const { inputs, backend } = args;
    const attrs = args.attrs as tf.NamedAttrMap & { transposeA: boolean; transposeB: boolean };
    if (!attrs.transposeA && !attrs.transposeB) return stock(args as KernelArgs<tf.NamedAttrMap>) as tf.TensorInfo;
    return tf.tidy(() => {
      let at = asTensor(inputs.a, backend);
      let bt = asTensor(inputs.b, backend);
      if (attrs.transposeA) at = tf.transpose(at, swapLast(at.rank));
      if (attrs.transposeB) bt = tf.transpose(bt, swapLast(bt.rank));
      return runStock(stock, { ...inputs, a: at, b: bt }, backend, { ...attrs, transposeA: false, transposeB: false });
    });
  };
}

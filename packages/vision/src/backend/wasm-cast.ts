// Cast and Identity for the wasm backend without needless copies. The stock Cast converts with
// TypedArray.prototype.set across element types, which V8 runs element by element at ~30 ns each (6 ms for
// one [16, 7, 7, 256] activation; the gradients of relu, relu6 and minimum each cast a mask); a plain loop is
// ~30x faster. Casting to the same dtype, and Identity, share the input's data with one more reference, as
// the cpu and webgl backends do (tensors are immutable; Reshape on wasm already shares data this way).
import * as tf from '@tensorflow/tfjs';
import { asHeapBackend } from './wasm-heap';
import type { KernelArgs, StockKernel } from './kernel-args';

const NUMERIC = new Set<tf.DataType>(['float32', 'int32', 'bool']);

function share(x: tf.TensorInfo, backend: tf.KernelBackend): tf.TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Identity: the input's data, shared. Strings go to the stock kernel. */
export function makeIdentity(stock: StockKernel) {
  return function identity(args: KernelArgs<tf.NamedAttrMap>): tf.TensorInfo {
    const { x } = args.inputs;
    if (x.dtype === 'string') return stock(args) as tf.TensorInfo;
    return share(x, args.backend);
  };
}

/** Cast between float32, int32 and bool by a loop (bool: x != 0); anything else goes to the stock kernel. */
export function makeCast(stock: StockKernel) {
  return function cast(args: KernelArgs<tf.CastAttrs>): tf.TensorInfo {
    const { x } = args.inputs;
    const { dtype } = args.attrs as tf.CastAttrs;
    if (!NUMERIC.has(x.dtype) || !NUMERIC.has(dtype)) {
      return stock(args as unknown as KernelArgs<tf.NamedAttrMap>) as tf.TensorInfo;
    }
    if (dtype === x.dtype) return share(x, args.backend);
    const backend = asHeapBackend(args.backend);
    const out = backend.makeOutput(x.shape, dtype);
    const src = backend.typedArrayFromHeap(x);
    const dst = backend.typedArrayFromHeap(out);
    const n = src.length;
    if (dtype === 'bool') {
      for (let i = 0; i < n; i++) dst[i] = src[i] !== 0 ? 1 : 0;
    } else {
      // Element assignment converts as the typed array requires (int32: truncation toward zero).
      for (let i = 0; i < n; i++) dst[i] = src[i];
    }
    return out;
  };
}

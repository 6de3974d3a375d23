// The shapes of kernel functions as the TensorFlow.js engine calls them, shared by the wasm kernels here.
import type * as tf from '@tensorflow/tfjs';

/** What a kernel function receives. */
export interface KernelArgs<A> {
  inputs: Record<string, tf.TensorInfo>;
  backend: tf.KernelBackend;
  attrs?: A;
}

/** A stock wasm kernel function that a kernel here delegates to. */
export type StockKernel = (args: KernelArgs<tf.NamedAttrMap>) => tf.TensorInfo | tf.TensorInfo[];

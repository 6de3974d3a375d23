// Training kernels for the TensorFlow.js wasm backend (@tensorflow/tfjs-backend-wasm 4.22). The stock backend
// has no Conv2DBackpropFilter and no depthwise-convolution gradients, so convolution layers cannot be trained
// on it, and its Conv2DBackpropInput and transposed matrix products run on slow scalar loops. This module
// registers, for backend 'wasm':
//   Conv2DBackpropFilter, Conv2DBackpropInput                        (wasm-conv-grads.ts)
//   DepthwiseConv2dNativeBackpropFilter / ...BackpropInput           (wasm-depthwise-grads.ts)
//   BatchMatMul, _FusedMatMul routed onto the fast XNNPACK product   (wasm-matmul.ts)
//   Tile by block copies (batch-normalisation gradients tile)       (wasm-tile.ts)
//   Cast by a loop, Identity and same-type Cast sharing data         (wasm-cast.ts)
//   Sum, Mean over leading / middle axes without a transpose          (wasm-reduce.ts)
//   MaxPoolGrad by one loop over the backend's memory                 (wasm-pool-grad.ts)
// Kernels the backend already has are replaced (kernel-registry.ts); the replaced ones keep their setup function
// so the wasm functions they call are bound whenever the backend (re)starts.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { conv2DBackpropFilter, conv2DBackpropInput } from './wasm-conv-grads';
import { depthwiseConv2dNativeBackpropFilter, depthwiseConv2dNativeBackpropInput } from './wasm-depthwise-grads';
import { install as installKernel, isOurs, requireStock as requireStockKernel } from './kernel-registry';
import { makeBatchMatMul, makeFusedMatMul } from './wasm-matmul';
import { makeTile } from './wasm-tile';
import { makeCast, makeIdentity } from './wasm-cast';
import { makeMean, makeSum } from './wasm-reduce';
import { makeMaxPoolGrad } from './wasm-pool-grad';

const BACKEND = 'wasm';

/** The kernel names this module provides for the wasm backend. */
export const WASM_TRAINING_KERNELS = [
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'BatchMatMul',
  '_FusedMatMul',
  'Tile',
  'Identity',
  'Cast',
  'Sum',
  'Mean',
  'MaxPoolGrad',
] as const;

const install = (name: string, make: (stock: tf.KernelConfig | undefined) => tf.KernelFunc) =>
  installKernel(name, BACKEND, make);
const requireStock = (name: string, stock: tf.KernelConfig | undefined) => requireStockKernel(name, BACKEND, stock);

/**
 * Registers the wasm training kernels (see the top of this file). Idempotent; call it before or after
 * tf.setBackend('wasm').
 */
export function registerWasmTrainingKernels(): void {
  install('Conv2DBackpropFilter', () => conv2DBackpropFilter as unknown as tf.KernelFunc);
  install('Conv2DBackpropInput', () => conv2DBackpropInput as unknown as tf.KernelFunc);
  install('DepthwiseConv2dNativeBackpropFilter', () => depthwiseConv2dNativeBackpropFilter as unknown as tf.KernelFunc);
  install('DepthwiseConv2dNativeBackpropInput', () => depthwiseConv2dNativeBackpropInput as unknown as tf.KernelFunc);
  install('BatchMatMul', (stock) => makeBatchMatMul(requireStock('BatchMatMul', stock)) as unknown as tf.KernelFunc);
  install('_FusedMatMul', (stock) => makeFusedMatMul(requireStock('_FusedMatMul', stock)) as unknown as tf.KernelFunc);
  install('Tile', (stock) => makeTile(requireStock('Tile', stock)) as unknown as tf.KernelFunc);
  install('Identity', (stock) => makeIdentity(requireStock('Identity', stock)) as unknown as tf.KernelFunc);
  install('Cast', (stock) => makeCast(requireStock('Cast', stock)) as unknown as tf.KernelFunc);
  install('Sum', (stock) => makeSum(requireStock('Sum', stock)) as unknown as tf.KernelFunc);
  install('Mean', (stock) => makeMean(requireStock('Mean', stock)) as unknown as tf.KernelFunc);
  install('MaxPoolGrad', (stock) => makeMaxPoolGrad(requireStock('MaxPoolGrad', stock)) as unknown as tf.KernelFunc);
}

/** True where every kernel of WASM_TRAINING_KERNELS is the one registered by registerWasmTrainingKernels. */
export function wasmTrainingKernelsRegistered(): boolean {
  return WASM_TRAINING_KERNELS.every((name) => isOurs(name, BACKEND));
}

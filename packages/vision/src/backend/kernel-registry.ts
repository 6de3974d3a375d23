// Replacing a backend's kernels with Graft's own: each kernel function registered here is marked, so that
// registering again (or from a second copy of a module) is a no-op, and the stock kernel it replaces is handed
// to the maker (to delegate to) and keeps its setup and dispose functions, so whatever they bind is bound
// whenever the backend (re)starts.
import * as tf from '@tensorflow/tfjs';
import type { StockKernel } from './kernel-args';

/** Marks the kernel functions registered here. */
const MARK = Symbol.for('graft.trainingKernel');

type MarkedKernelFunc = tf.KernelFunc & { [MARK]?: true };

/** True where the kernel `name` of `backend` is one registered by install(). */
export function isOurs(name: string, backend: string): boolean {
  const k = tf.getKernel(name, backend);
  return k != null && (k.kernelFunc as MarkedKernelFunc)[MARK] === true;
}

/** Registers make(stock) for `name` on `backend`, replacing the stock kernel where there is one. */
export function install(name: string, backend: string, make: (stock: tf.KernelConfig | undefined) => tf.KernelFunc): void {
  if (isOurs(name, backend)) return;
  const stock = tf.getKernel(name, backend);
  const kernelFunc = make(stock) as MarkedKernelFunc;
  kernelFunc[MARK] = true;
  if (stock) tf.unregisterKernel(name, backend);
  tf.registerKernel({
    kernelName: name,
    backendName: backend,
    kernelFunc,
    setupFunc: stock?.setupFunc,
    disposeFunc: stock?.disposeFunc,
  });
}

/** The stock kernel function a replacement delegates to (an error where the backend has none). */
export function requireStock(name: string, backend: string, stock: tf.KernelConfig | undefined): StockKernel {
  if (!stock) throw new Error(`the ${backend} backend has no '${name}' kernel to build on`);
  return stock.kernelFunc as unknown as StockKernel;
}

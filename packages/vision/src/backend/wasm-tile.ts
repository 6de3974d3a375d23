// Tile for the wasm backend. The stock kernel computes a source index per output element (tens of ns each);
// the gradient of batch normalisation tiles a [1, 1, 1, C] tensor to the full [N, H, W, C] activation shape,
// which made Tile the costliest kernel of a MobileNet training step. Here the output is built in the backend's
// memory by block copies: the input is written once, then each axis, innermost first, is repeated by copying
// the block written so far (copyWithin, a memmove).
import * as tf from '@tensorflow/tfjs';
import type { KernelArgs, StockKernel } from './kernel-args';
import { asHeapBackend } from './wasm-heap';

type Heap = Float32Array | Int32Array | Uint8Array;

/** Tile: inputs {x}, attrs {reps}. Strings go to the stock kernel. */
export function makeTile(stock: StockKernel) {
  return function tile(args: KernelArgs<tf.TileAttrs>): tf.TensorInfo {
    const x = args.inputs.x;
    const reps = (args.attrs as tf.TileAttrs).reps;
    if (x.dtype === 'string' || x.dtype === 'complex64') return stock(args as unknown as KernelArgs<tf.NamedAttrMap>) as tf.TensorInfo;
    const backend = asHeapBackend(args.backend);
    const outShape = x.shape.map((d, i) => d * reps[i]);
    const out = backend.makeOutput(outShape, x.dtype);
    if (tf.util.sizeFromShape(outShape) === 0) return out;
    const src = backend.typedArrayFromHeap(x);
    const dst = backend.typedArrayFromHeap(out);
    tileInto(dst, src, x.shape, reps);
    return out;
  };
}

/** Writes tile(src of shape `shape`, reps) into dst (row-major). */
export function tileInto(dst: Heap, src: Heap, shape: number[], reps: number[]): void {
  const rank = shape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return;
  }
  // Collapse runs of trailing axes that are not repeated: they are copied as one contiguous block.
  let inner = rank;
  let block = 1;
  while (inner > 0 && reps[inner - 1] === 1) {
    inner--;
    block *= shape[inner];
  }
  if (inner === 0) {
    dst.set(src.subarray(0, block) as never);
    return;
  }
  // outBlock[a] = elements of the output below axis a (exclusive), inBlock[a] likewise for the input.
  const outBlock = new Array<number>(inner + 1);
  const inBlock = new Array<number>(inner + 1);
  outBlock[inner] = block;
  inBlock[inner] = block;
  for (let a = inner - 1; a >= 0; a--) {
    outBlock[a] = outBlock[a + 1] * shape[a] * reps[a];
    inBlock[a] = inBlock[a + 1] * shape[a];
  }
  const fill = (axis: number, srcOff: number, dstOff: number): void => {
    const d = shape[axis];
    if (axis === inner - 1) {
      if (block === 1) {
        for (let i = 0; i < d; i++) dst[dstOff + i] = src[srcOff + i];
      } else {
        dst.set(src.subarray(srcOff, srcOff + d * block) as never, dstOff);
      }
    } else {
      for (let i = 0; i < d; i++) fill(axis + 1, srcOff + i * inBlock[axis + 1], dstOff + i * outBlock[axis + 1]);
    }
    // The first copy of this axis is written: repeat it, doubling the copied span each time.
    const span = d * outBlock[axis + 1];
    const total = span * reps[axis];
    for (let done = span; done < total; ) {
      const n = Math.min(done, total - done);
      dst.copyWithin(dstOff + done, dstOff, dstOff + n);
      done += n;
    }
  };
  fill(0, 0, 0);
}

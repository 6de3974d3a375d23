// The depthwise convolution of a training-step graph (step-graph.ts) and its filter gradient, on NHWC values
// (stride 1, 'same' padding, depth multiplier 1; the filter as Keras holds it, [k, k, C, 1]).
//
// Where ONNX Runtime has its blocked-layout kernels (the com.microsoft.nchwc ops of its CPU provider on x86-64,
// channels in blocks of 8 or 16), both run on its depthwise kernel:
// - the convolution, of the input reordered to the blocked layout;
// - the filter gradient dW[a, b, c] = sum over n, i, j of xpad[n, i + a, j + b, c] dy[n, i, j, c], as one
//   depthwise convolution with a tall filter: the samples of x are stacked into one image per channel (each
//   padded with p zero rows above and below), those of dy the same way (each followed by 2p zero rows) and
//   taken as the filter; the output is the k x k gradient.
// Elsewhere ONNX's grouped Conv computes both, on NCHW values (the filter gradient as a grouped convolution
// with the batch as each group's channels and dy as the filter).
import { attr, type GraphBuilder } from '@graft/inference/onnx-graph';

const NCHWC = 'com.microsoft.nchwc';

export interface DepthwiseDims {
  /** Kernel size (odd). */
  k: number;
  h: number;
  w: number;
  c: number;
  /** Channels per block of ONNX Runtime's blocked layout, or null: ONNX's Conv. */
  block: number | null;
}

/** depthwise(x, filter) + bias for NHWC x; bias [C] or null. */
export function depthwiseForward(g: GraphBuilder, x: string, filter: string, bias: string | null, d: DepthwiseDims): string {
  const { k, c, block } = d;
  const p = (k - 1) / 2;
  const ints = (v: number[]) => g.addInt64('shape', v);
  const convAttrs = [attr.int('group', c), attr.ints('pads', [p, p, p, p]), attr.ints('kernel_shape', [k, k])];
  if (block === null) {
    const wOnnx = g.add('Transpose', [filter], [attr.ints('perm', [2, 3, 0, 1])]); // [C, 1, k, k]
    const xN = g.add('Transpose', [x], [attr.ints('perm', [0, 3, 1, 2])]);
    const yN = g.add('Conv', bias ? [xN, wOnnx, bias] : [xN, wOnnx], convAttrs);
    return g.add('Transpose', [yN], [attr.ints('perm', [0, 2, 3, 1])]);
  }
  // The filter in the blocked layout of one input channel per group: [C / block, k, k, block].
  const wBlocked = g.add('Transpose', [g.add('Reshape', [filter, ints([k, k, c / block, block])])], [attr.ints('perm', [2, 0, 1, 3])]);
  const xB = g.addIn(NCHWC, 'ReorderInput', [x], [attr.int('channels_last', 1)]);
  const wB = g.add('Reshape', [wBlocked, ints([c, 1, k, k])]);
  const yB = g.addIn(NCHWC, 'Conv', bias ? [xB, wB, bias] : [xB, wB], convAttrs);
  return g.addIn(NCHWC, 'ReorderOutput', [yB], [attr.int('channels', c), attr.int('channels_last', 1)]);
}

/** d(loss)/d(filter), [k, k, C, 1], from NHWC x and dy (the gradient at the convolution's output). */
export function depthwiseFilterGradient(g: GraphBuilder, x: string, dy: string, d: DepthwiseDims): string {
  const { k, h, w, c, block } = d;
  const p = (k - 1) / 2;
  const ints = (v: number[]) => g.addInt64('shape', v);
  if (block === null) {
    const xN = g.add('Transpose', [x], [attr.ints('perm', [0, 3, 1, 2])]);
    const xp = g.add('Pad', [xN, ints([0, 0, p, p, 0, 0, p, p])]);
    const xr = g.add('Reshape', [g.add('Transpose', [xp], [attr.ints('perm', [1, 0, 2, 3])]), ints([1, -1, h + 2 * p, w + 2 * p])]);
    const dyT = g.add('Transpose', [dy], [attr.ints('perm', [3, 0, 1, 2])]); // [C, n, H, W]
    const dw = g.add('Conv', [xr, dyT], [attr.int('group', c)]); // [1, C, k, k]
    return g.add('Reshape', [g.add('Transpose', [g.add('Reshape', [dw, ints([c, k, k])])], [attr.ints('perm', [1, 2, 0])]), ints([k, k, c, 1])]);
  }
  /** NHWC rows padded, the samples stacked into one image ([1, n * (H + 2p), W, C]) and reordered to blocks. */
  const stacked = (t: string, rowsBefore: number, rowsAfter: number) => {
    const padded = g.add('Pad', [t, ints([0, rowsBefore, 0, 0, 0, rowsAfter, 0, 0])]);
    return g.addIn(NCHWC, 'ReorderInput', [g.add('Reshape', [padded, ints([1, -1, w, c])])], [attr.int('channels_last', 1)]);
  };
  const xB = stacked(x, p, p);
  const dyB = g.add('Reshape', [stacked(dy, 0, 2 * p), ints([c, 1, -1, w])]);
  // Output row a sums x's rows r + a against dy's rows r: the image gets 2p zero rows below and p columns each side.
  const gB = g.addIn(NCHWC, 'Conv', [xB, dyB], [attr.int('group', c), attr.ints('pads', [0, p, 2 * p, p])]);
  const gk = g.addIn(NCHWC, 'ReorderOutput', [gB], [attr.int('channels', c), attr.int('channels_last', 1)]); // [1, k, k, C]
  return g.add('Reshape', [gk, ints([k, k, c, 1])]);
}

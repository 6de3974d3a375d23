// InceptionV3 without the top (keras.applications.inception_v3, include_top=False).
// Keras leaves most of its layers unnamed; they carry the names Keras 2 gave them in the published weight file
// (conv2d_1 .. conv2d_94, batch_normalization_1 .., activation_1 .., max_pooling2d_1 .., average_pooling2d_1 ..,
// concatenate_1 ..), numbered in creation order, so that weights load by name.
import type * as tf from '@tensorflow/tfjs';
import { type BuildOptions, checkInputSize, LayerKit, type Sym } from './common';

export const INCEPTION_V3_MIN_INPUT_SIZE = 75;

/** Keras-2-style automatic layer names: `<prefix>_<n>`, n counted from 1 per prefix. */
class AutoNames {
  private readonly counts = new Map<string, number>();
  next(prefix: string): string {
    const n = (this.counts.get(prefix) ?? 0) + 1;
    this.counts.set(prefix, n);
    return `${prefix}_${n}`;
  }
}

export function buildInceptionV3(inputSize: number, opts: BuildOptions = {}): tf.LayersModel {
  checkInputSize('inception_v3', inputSize, INCEPTION_V3_MIN_INPUT_SIZE);
  const k = new LayerKit(opts);
  const names = new AutoNames();

  // Conv2D without bias, BatchNormalization without scale (gamma), ReLU.
  const convBn = (
    x: Sym,
    filters: number,
    rows: number,
    cols: number,
    o: { padding?: 'same' | 'valid'; strides?: number } = {},
  ): Sym => {
    x = k.conv(x, names.next('conv2d'), filters, [rows, cols], {
      strides: o.strides ?? 1,
      padding: o.padding ?? 'same',
      useBias: false,
    });
    x = k.bn(x, names.next('batch_normalization'), { scale: false });
    return k.relu(x, names.next('activation'));
  };
  const maxPool = (x: Sym) => k.maxPool(x, names.next('max_pooling2d'), 3, 2);
  const avgPool = (x: Sym) => k.avgPool(x, names.next('average_pooling2d'), 3, 1, 'same');

  const input = k.input(inputSize);
  let x = convBn(input, 32, 3, 3, { strides: 2, padding: 'valid' });
  x = convBn(x, 32, 3, 3, { padding: 'valid' });
  x = convBn(x, 64, 3, 3);
  x = maxPool(x);
  x = convBn(x, 80, 1, 1, { padding: 'valid' });
  x = convBn(x, 192, 3, 3, { padding: 'valid' });
  x = maxPool(x);

  // mixed0, mixed1, mixed2: 35 x 35 x 256 / 288 / 288 at 299
  for (const [i, poolFilters] of [32, 64, 64].entries()) {
    const b1x1 = convBn(x, 64, 1, 1);
    let b5x5 = convBn(x, 48, 1, 1);
    b5x5 = convBn(b5x5, 64, 5, 5);
    let b3x3dbl = convBn(x, 64, 1, 1);
    b3x3dbl = convBn(b3x3dbl, 96, 3, 3);
    b3x3dbl = convBn(b3x3dbl, 96, 3, 3);
    const bPool = convBn(avgPool(x), poolFilters, 1, 1);
    x = k.concat([b1x1, b5x5, b3x3dbl, bPool], `mixed${i}`);
  }

  // mixed3: 17 x 17 x 768
  {
    const b3x3 = convBn(x, 384, 3, 3, { strides: 2, padding: 'valid' });
    let b3x3dbl = convBn(x, 64, 1, 1);
    b3x3dbl = convBn(b3x3dbl, 96, 3, 3);
    b3x3dbl = convBn(b3x3dbl, 96, 3, 3, { strides: 2, padding: 'valid' });
    const bPool = maxPool(x);
    x = k.concat([b3x3, b3x3dbl, bPool], 'mixed3');
  }

  // mixed4 .. mixed7: 17 x 17 x 768, with 128, 160, 160, 192 filters inside the 7x7 branches
  for (const [i, f] of [128, 160, 160, 192].entries()) {
    const b1x1 = convBn(x, 192, 1, 1);
    let b7x7 = convBn(x, f, 1, 1);
    b7x7 = convBn(b7x7, f, 1, 7);
    b7x7 = convBn(b7x7, 192, 7, 1);
    let b7x7dbl = convBn(x, f, 1, 1);
    b7x7dbl = convBn(b7x7dbl, f, 7, 1);
    b7x7dbl = convBn(b7x7dbl, f, 1, 7);
    b7x7dbl = convBn(b7x7dbl, f, 7, 1);
    b7x7dbl = convBn(b7x7dbl, 192, 1, 7);
    const bPool = convBn(avgPool(x), 192, 1, 1);
    x = k.concat([b1x1, b7x7, b7x7dbl, bPool], `mixed${4 + i}`);
  }

  // mixed8: 8 x 8 x 1280
  {
    let b3x3 = convBn(x, 192, 1, 1);
    b3x3 = convBn(b3x3, 320, 3, 3, { strides: 2, padding: 'valid' });
    let b7x7x3 = convBn(x, 192, 1, 1);
    b7x7x3 = convBn(b7x7x3, 192, 1, 7);
    b7x7x3 = convBn(b7x7x3, 192, 7, 1);
    b7x7x3 = convBn(b7x7x3, 192, 3, 3, { strides: 2, padding: 'valid' });
    const bPool = maxPool(x);
    x = k.concat([b3x3, b7x7x3, bPool], 'mixed8');
  }

  // mixed9, mixed10: 8 x 8 x 2048
  for (let i = 0; i < 2; i++) {
    const b1x1 = convBn(x, 320, 1, 1);
    let b3x3 = convBn(x, 384, 1, 1);
    const b3x3a = convBn(b3x3, 384, 1, 3);
    const b3x3b = convBn(b3x3, 384, 3, 1);
    b3x3 = k.concat([b3x3a, b3x3b], `mixed9_${i}`);
    let b3x3dbl = convBn(x, 448, 1, 1);
    b3x3dbl = convBn(b3x3dbl, 384, 3, 3);
    const b3x3dblA = convBn(b3x3dbl, 384, 1, 3);
    const b3x3dblB = convBn(b3x3dbl, 384, 3, 1);
    b3x3dbl = k.concat([b3x3dblA, b3x3dblB], names.next('concatenate'));
    const bPool = convBn(avgPool(x), 192, 1, 1);
    x = k.concat([b1x1, b3x3, b3x3dbl, bPool], `mixed${9 + i}`);
  }

  return k.model(input, x, opts.name ?? 'inception_v3');
}

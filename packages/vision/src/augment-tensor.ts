// Augmentation and normalisation of a batch as TensorFlow.js ops, so that on a GPU backend the images go to the
// GPU as bytes and are resampled there, next to the frozen base, instead of on this thread (which augments a few
// hundred 224 px images a second, where the GPU runs the base at thousands). The same resampling as
// applyTransform (augment.ts): the output pixel (x, y) reads the input at (a·x + b·y + c, d·x + e·y + f),
// bilinear or nearest, coordinates within 1e-6 of a pixel snapped to it, indices outside the image mapped per
// fill mode (nearest, reflect, wrap; constant fills cval where the point is outside), then the normalisation of
// normalizePixels. Coordinates are float32 here (float64 there): values agree to about 1e-4 of the pixel range.
import * as tf from '@tensorflow/tfjs';
import { pixelTransform } from '@graft/inference/image';
import { isIdentity, transformMatrix, type AffineTransform, type ApplyOptions, type FillMode } from './augment';
import type { Preprocessing } from './preprocess';

const EPS = 1e-6;

/** Integer-valued indices outside [0, n) mapped back inside as augment.ts's mapIndex does. */
function mapIndices(i: tf.Tensor, n: number, mode: FillMode): tf.Tensor {
  if (mode === 'wrap') return tf.mod(i, n); // floor modulo: in [0, n)
  if (mode === 'reflect') {
    const k = tf.mod(i, 2 * n);
    return tf.where(tf.greaterEqual(k, n), tf.sub(2 * n - 1, k), k);
  }
  return tf.clipByValue(i, 0, n - 1);
}

/**
 * Resamples a batch of HxWxC images (float32 pixel values, channels last) under one transform each (null: the
 * image as it is), as applyTransform does image by image.
 */
export function transformBatch(
  images: tf.Tensor4D,
  transforms: readonly (AffineTransform | null)[],
  opts: Omit<ApplyOptions, 'out'> = {},
): tf.Tensor4D {
  const [b, h, w, c] = images.shape;
  if (transforms.length !== b) throw new RangeError(`${transforms.length} transforms for a batch of ${b}`);
  if (transforms.every((t) => t === null || isIdentity(t))) return tf.clone(images);
  return tf.tidy(() => {
    const m = new Float32Array(b * 6);
    transforms.forEach((t, i) => m.set(t && !isIdentity(t) ? transformMatrix(t, h, w) : [1, 0, 0, 0, 1, 0], i * 6));
    const coef = (k: number) => tf.reshape(tf.tensor1d(m.filter((_, j) => j % 6 === k)), [b, 1, 1]);
    const xs = tf.reshape(tf.range(0, w, 1, 'float32'), [1, 1, w]);
    const ys = tf.reshape(tf.range(0, h, 1, 'float32'), [1, h, 1]);
    const xi = tf.add(tf.add(tf.mul(coef(0), xs), tf.mul(coef(1), ys)), coef(2)); // [b, h, w]
    const yi = tf.add(tf.add(tf.mul(coef(3), xs), tf.mul(coef(4), ys)), coef(5));
    const mode = opts.fillMode ?? 'nearest';
    const indexMode: FillMode = mode === 'constant' ? 'nearest' : mode;
    const flat = tf.reshape(images, [b * h * w, c]);
    // Offsets in int32: batch x height x width may pass float32's 2^24 exact integers.
    const base = tf.reshape(tf.mul(tf.range(0, b, 1, 'int32'), tf.scalar(h * w, 'int32')), [b, 1, 1]);
    /** The pixels at integer-valued (column, row) indices, mapped inside per fill mode: [b, h, w, c]. */
    const read = (px: tf.Tensor, py: tf.Tensor) => {
      const row = tf.cast(mapIndices(py, h, indexMode), 'int32');
      const col = tf.cast(mapIndices(px, w, indexMode), 'int32');
      const at = tf.add(base, tf.add(tf.mul(row, tf.scalar(w, 'int32')), col));
      return tf.reshape(tf.gather(flat, tf.reshape(at, [-1])), [b, h, w, c]);
    };
    let out: tf.Tensor;
    if ((opts.interpolation ?? 'bilinear') === 'nearest') {
      // Math.round: halves go up (tf.round would take them to even).
      out = read(tf.floor(tf.add(xi, 0.5)), tf.floor(tf.add(yi, 0.5)));
    } else {
      const snap = (v: tf.Tensor) => {
        const v0 = tf.floor(v);
        const frac = tf.sub(v, v0);
        const up = tf.greater(frac, 1 - EPS);
        return {
          v0: tf.add(v0, tf.cast(up, 'float32')),
          f: tf.expandDims(tf.where(tf.logicalOr(up, tf.less(frac, EPS)), tf.zerosLike(frac), frac), 3),
        };
      };
      const x = snap(xi);
      const y = snap(yi);
      const x1 = tf.add(x.v0, 1);
      const y1 = tf.add(y.v0, 1);
      const top = tf.add(tf.mul(read(x.v0, y.v0), tf.sub(1, x.f)), tf.mul(read(x1, y.v0), x.f));
      const bottom = tf.add(tf.mul(read(x.v0, y1), tf.sub(1, x.f)), tf.mul(read(x1, y1), x.f));
      out = tf.add(tf.mul(top, tf.sub(1, y.f)), tf.mul(bottom, y.f));
    }
    if (mode === 'constant') {
      const inside = tf.logicalAnd(
        tf.logicalAnd(tf.greaterEqual(xi, -EPS), tf.lessEqual(xi, w - 1 + EPS)),
        tf.logicalAnd(tf.greaterEqual(yi, -EPS), tf.lessEqual(yi, h - 1 + EPS)),
      );
      out = tf.where(tf.expandDims(inside, 3), out, tf.fill(out.shape, opts.cval ?? 0));
    }
    return out as tf.Tensor4D;
  });
}

/** normalizePixels (preprocess.ts) as ops, on RGB pixel values in 0..255, channels last. */
export function normalizeBatch(pixels: tf.Tensor4D, p: Preprocessing): tf.Tensor4D {
  const t = pixelTransform(p);
  return tf.tidy(() => {
    const rgb = t.bgr ? tf.reverse(pixels, 3) : pixels;
    return tf.mul(tf.sub(rgb, tf.tensor1d(t.sub)), tf.tensor1d(t.mul)) as tf.Tensor4D;
  });
}

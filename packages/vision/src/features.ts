// Training data as batches: features computed once and kept in memory (FeatureStore), or images augmented anew
// for every epoch and optionally sent through a frozen model on the way (ImageSource). Also the one-off pass
// that computes features of images (and their augmented copies) through a frozen model.
import * as tf from '@tensorflow/tfjs';
import { applyTransform, sampleTransform, type AugmentationOptions, type AffineTransform } from './augment';
import { throwIfAborted } from './errors';
import type { Batch, BatchSource, LossKind } from './fit';
import { labelTensor } from './fit';
import { normalizePixels, type Preprocessing } from './preprocess';
import { createRng, deriveSeed, permutation } from './random';

function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Per-sample arrays (one per model input) kept in memory, served as shuffled batches. */
export class FeatureStore implements BatchSource {
  readonly samples: Float32Array[][] = [];
  readonly labels: number[] = [];

  constructor(
    /** Shape of each input, without the batch dimension. */
    readonly shapes: number[][],
    readonly kind: LossKind,
    readonly numClasses: number,
    readonly batchSize: number,
    readonly seed: number,
  ) {}

  get size(): number {
    return this.labels.length;
  }

  add(values: Float32Array[], label: number): void {
    this.samples.push(values);
    this.labels.push(label);
  }

  async *batches(epoch: number, shuffle: boolean, signal?: AbortSignal): AsyncGenerator<Batch> {
    const n = this.size;
    const order = shuffle ? permutation(n, createRng(deriveSeed(this.seed, 'shuffle', epoch))) : [...Array(n).keys()];
    for (let start = 0; start < n; start += this.batchSize) {
      throwIfAborted(signal);
      const idx = order.slice(start, start + this.batchSize);
      const xs = this.shapes.map((shape, k) => {
        const per = sizeOf(shape);
        const buf = new Float32Array(idx.length * per);
        idx.forEach((s, j) => buf.set(this.samples[s]![k]!, j * per));
        return tf.tensor(buf, [idx.length, ...shape]);
      });
      const ys = labelTensor(
        idx.map((s) => this.labels[s]!),
        this.kind,
        this.numClasses,
      );
      yield { xs, ys, size: idx.length };
    }
  }
}

/** Maps a batch of network inputs to the inputs of the trained part (a frozen model's outputs). */
export type FrozenForward = (images: tf.Tensor4D) => tf.Tensor[];

export interface ImageSourceOptions {
  /** Decoded RGB images, size x size x 3 each. */
  images: Uint8Array[];
  labels: number[];
  size: number;
  preprocessing: Preprocessing;
  /** Augmentation drawn anew for every epoch when batches are shuffled (training); null: none. */
  augmentation: AugmentationOptions | null;
  frozen: FrozenForward | null;
  kind: LossKind;
  numClasses: number;
  batchSize: number;
  seed: number;
}

/** Images served as batches, augmented per epoch, optionally through a frozen model. */
export class ImageSource implements BatchSource {
  constructor(readonly o: ImageSourceOptions) {}

  get size(): number {
    return this.o.labels.length;
  }

  async *batches(epoch: number, shuffle: boolean, signal?: AbortSignal): AsyncGenerator<Batch> {
    const { images, labels, size, batchSize } = this.o;
    const n = labels.length;
    const order = shuffle ? permutation(n, createRng(deriveSeed(this.o.seed, 'shuffle', epoch))) : [...Array(n).keys()];
    const per = size * size * 3;
    for (let start = 0; start < n; start += batchSize) {
      throwIfAborted(signal);
      const idx = order.slice(start, start + batchSize);
      const buf = new Float32Array(idx.length * per);
      idx.forEach((i, j) => {
        const out = buf.subarray(j * per, (j + 1) * per);
        if (shuffle && this.o.augmentation) {
          const rng = createRng(deriveSeed(this.o.seed, 'augment', epoch, i));
          augmentInto(images[i]!, size, this.o.augmentation, sampleTransform(this.o.augmentation, size, size, rng), out);
          normalizePixels(out, this.o.preprocessing, out);
        } else {
          normalizePixels(images[i]!, this.o.preprocessing, out);
        }
      });
      const x = tf.tensor4d(buf, [idx.length, size, size, 3]);
      let xs: tf.Tensor[];
      if (this.o.frozen) {
        const frozen = this.o.frozen;
        xs = tf.tidy(() => frozen(x));
        x.dispose();
      } else {
        xs = [x];
      }
      const ys = labelTensor(
        idx.map((i) => labels[i]!),
        this.o.kind,
        this.o.numClasses,
      );
      yield { xs, ys, size: idx.length };
    }
  }
}

function augmentInto(src: Uint8Array, size: number, opts: AugmentationOptions, t: AffineTransform, out: Float32Array): void {
  applyTransform(src, size, size, 3, t, { fillMode: opts.fillMode, cval: opts.cval, interpolation: opts.interpolation, out });
}

/** One image to send through the frozen model: copy 0 is the image itself, copy k > 0 an augmented version. */
export interface ExtractItem {
  image: number;
  copy: number;
  label: number;
}

export interface ExtractOptions {
  images: Uint8Array[];
  items: ExtractItem[];
  size: number;
  preprocessing: Preprocessing;
  augmentation: AugmentationOptions | null;
  seed: number;
  batchSize: number;
  /** Computes, for a batch of network inputs, the arrays to keep (one tensor per store). */
  forward: (images: tf.Tensor4D) => tf.Tensor[];
  /** One store per output of forward. */
  stores: FeatureStore[];
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
}

/**
 * Sends every item through forward once, in batches, and keeps each output per sample in its store. The
 * augmentation of copy k of image i is drawn from a seed of (seed, i, k), so it is the same on every run.
 */
export async function extractFeatures(o: ExtractOptions): Promise<void> {
  const per = o.size * o.size * 3;
  for (let start = 0; start < o.items.length; start += o.batchSize) {
    throwIfAborted(o.signal);
    const batch = o.items.slice(start, start + o.batchSize);
    const buf = new Float32Array(batch.length * per);
    batch.forEach((it, j) => {
      const out = buf.subarray(j * per, (j + 1) * per);
      if (it.copy > 0 && o.augmentation) {
        const rng = createRng(deriveSeed(o.seed, 'copy', it.image, it.copy));
        augmentInto(o.images[it.image]!, o.size, o.augmentation, sampleTransform(o.augmentation, o.size, o.size, rng), out);
        normalizePixels(out, o.preprocessing, out);
      } else {
        normalizePixels(o.images[it.image]!, o.preprocessing, out);
      }
    });
    const outputs = tf.tidy(() => o.forward(tf.tensor4d(buf, [batch.length, o.size, o.size, 3])));
    try {
      const arrays = outputs.map((t) => t.dataSync() as Float32Array);
      batch.forEach((it, j) => {
        o.stores.forEach((store, k) => {
          // A store may take several outputs; forward returns them in store order, one per store input.
          const values = store.shapes.map((shape, m) => {
            const arr = arrays[offsetOf(o.stores, k) + m]!;
            const sz = sizeOf(shape);
            return arr.slice(j * sz, (j + 1) * sz);
          });
          store.add(values, it.label);
        });
      });
    } finally {
      tf.dispose(outputs);
    }
    o.onProgress?.(Math.min(start + batch.length, o.items.length), o.items.length);
    // Let timers and I/O callbacks run between batches.
    await new Promise<void>((r) => setImmediate(r));
  }
}

function offsetOf(stores: FeatureStore[], k: number): number {
  let off = 0;
  for (let i = 0; i < k; i++) off += stores[i]!.shapes.length;
  return off;
}

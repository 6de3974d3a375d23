// Training data as batches: features computed once and kept in memory (FeatureStore), or images augmented anew
// for every epoch and optionally sent through a frozen model on the way (ImageSource). Also the one-off pass
// that computes features of images (and of augmented copies of them) through a frozen model.
//
// Frozen forward passes take and return plain float arrays (frozen.ts runs them on ONNX Runtime in a worker
// thread where it can), so both passes are pipelined: the next batch is augmented and normalised on this thread,
// and sent, while the frozen model computes the current one. Where the frozen model runs on a GPU backend, the
// decoded bytes are sent instead and augmented and normalised there (augmentOnBackend), as a tensor.
import * as tf from '@tensorflow/tfjs';
import { applyTransform, applyTransformToPixels, sampleTransform, type AugmentationOptions, type AffineTransform } from './augment';
import { normalizeBatch, transformBatch } from './augment-tensor';
import { throwIfAborted } from './errors';
import { LentBuffers } from '@graft/inference/host';
import { fromHalf, toHalf } from './half';
import type { FrozenRunOptions } from './frozen';
import type { Batch, BatchSource, LossKind } from './fit';
import { labelArray, labelTensor } from './fit';
import { normalizePixels, type Preprocessing } from './preprocess';
import { createRng, deriveSeed, permutation } from './random';

export function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Network inputs of a batch: normalised values laid out one sample after the other, or a tensor of them already
 * on the backend (augmentOnBackend below), which the callee disposes, or 8-bit RGB pixels where the callee takes
 * them (ExtractOptions.pixels).
 */
export type NetworkInput = Float32Array | Uint8Array | tf.Tensor4D;

/**
 * A frozen forward pass on arrays: `batch` network inputs in, one array per output out (samples one after the
 * other). It may take ownership of `input`.
 */
export type ArrayForward = (input: NetworkInput, batch: number, opts?: Pick<FrozenRunOptions, 'fp32' | 'giveBack'>) => Promise<Float32Array[]>;

/** How a shuffled epoch draws from a store whose samples are grouped (an image and its augmented copies). */
export type Sampling = 'all' | 'one_per_group';

/**
 * How a store keeps its values: float32 as given, or float16 at half the memory (the full feature maps fine-tuning
 * reads: relative error under 2^-11, finer than the int8 steps of a frozen base in int8), served as float32.
 */
export type StorePrecision = 'float32' | 'float16';

/** Bytes a store keeps per value. */
export const BYTES_PER_VALUE: Readonly<Record<StorePrecision, number>> = { float32: 4, float16: 2 };

/**
 * Per-sample arrays (one per model input) kept in memory, served as shuffled batches. Samples may be grouped
 * (an image and its augmented copies): with sampling 'one_per_group' a training epoch serves one sample of each
 * group, going round the group's samples from epoch to epoch (in an order of its own per group), so every epoch
 * sees each image once, in another version, as an epoch of augmentation on the fly does. Evaluation (no
 * shuffle) serves every sample.
 */
export class FeatureStore implements BatchSource {
  private readonly rows: (Float32Array | Uint16Array)[][] = [];
  readonly labels: number[] = [];
  private readonly groupOf: number[] = [];
  private groups: Map<number, number[]> | null = null;

  constructor(
    /** Shape of each input, without the batch dimension. */
    readonly shapes: number[][],
    readonly kind: LossKind,
    readonly numClasses: number,
    readonly batchSize: number,
    readonly seed: number,
    readonly sampling: Sampling = 'all',
    readonly precision: StorePrecision = 'float32',
  ) {}

  /** Samples in a training epoch. */
  get size(): number {
    return this.sampling === 'one_per_group' ? this.groupMap().size : this.labels.length;
  }

  /** Groups held (an image with its augmented copies is one). */
  get groupCount(): number {
    return this.groupMap().size;
  }

  /** Samples held. */
  get count(): number {
    return this.labels.length;
  }

  /** The index of every sample held, in order. */
  indices(): number[] {
    return [...this.labels.keys()];
  }

  /** The first input of every sample held, in order (floats; halves widened). */
  samples(): Float32Array[] {
    return Array.from({ length: this.count }, (_, i) => this.sample(i));
  }

  /** The group of each sample (an image and its augmented copies share one). */
  get sampleGroups(): readonly number[] {
    return this.groupOf;
  }

  /**
   * Adds a sample; `group` (default: a group of its own) ties augmented copies of one image together. The store keeps
   * its own copy of `values` (rounded to halves in float16), so they may be views on a larger buffer.
   */
  add(values: Float32Array[], label: number, group?: number): void {
    this.rows.push(values.map((v) => (this.precision === 'float16' ? toHalf(v) : v.slice())));
    this.labels.push(label);
    this.groupOf.push(group ?? -1 - this.labels.length);
    this.groups = null;
  }

  /**
   * Adds every sample of `other` (same shapes and precision), sharing its values rather than copying them; its groups
   * are shifted by `groupOffset` to stay apart from this store's (a sample of no group stays in one of its own).
   */
  addAll(other: FeatureStore, groupOffset: number): void {
    if (other.precision !== this.precision || JSON.stringify(other.shapes) !== JSON.stringify(this.shapes)) {
      throw new Error('the stores hold samples of other shapes or precision');
    }
    other.rows.forEach((row, i) => {
      this.rows.push(row);
      this.labels.push(other.labels[i]!);
      const g = other.groupOf[i]!;
      this.groupOf.push(g >= 0 ? g + groupOffset : -1 - this.labels.length);
    });
    this.groups = null;
  }

  /** A new store like this one (shapes, labels' kind, batch size, seed, sampling, precision), empty. */
  emptyLike(): FeatureStore {
    return new FeatureStore(this.shapes, this.kind, this.numClasses, this.batchSize, this.seed, this.sampling, this.precision);
  }

  private groupMap(): Map<number, number[]> {
    if (!this.groups) {
      const m = new Map<number, number[]>();
      this.groupOf.forEach((g, i) => {
        const list = m.get(g);
        if (list) list.push(i);
        else m.set(g, [i]);
      });
      this.groups = m;
    }
    return this.groups;
  }

  /** The sample indices of a training epoch (before shuffling). */
  epochSamples(epoch: number): number[] {
    if (this.sampling === 'all') return this.indices();
    const out: number[] = [];
    for (const [g, members] of this.groupMap()) {
      const k = members.length;
      if (k === 1) {
        out.push(members[0]!);
        continue;
      }
      // Each group goes through its members in an order drawn once, starting at a point of its own.
      const order = permutation(k, createRng(deriveSeed(this.seed, 'copies', g)));
      out.push(members[order[epoch % k]!]!);
    }
    return out;
  }

  /** Input k of sample i, as float32. */
  sample(i: number, k = 0): Float32Array {
    const values = this.rows[i]![k]!;
    if (values instanceof Float32Array) return values;
    const out = new Float32Array(values.length);
    fromHalf(values, out);
    return out;
  }

  /** The samples idx, one array per input with the samples one after the other. */
  gather(idx: readonly number[]): Float32Array[] {
    return this.shapes.map((shape, k) => {
      const per = sizeOf(shape);
      const buf = new Float32Array(idx.length * per);
      idx.forEach((s, j) => {
        const values = this.rows[s]![k]!;
        if (values instanceof Float32Array) buf.set(values, j * per);
        else fromHalf(values, buf, j * per);
      });
      return buf;
    });
  }

  async *batches(epoch: number, shuffle: boolean, signal?: AbortSignal): AsyncGenerator<Batch> {
    const picked = shuffle ? this.epochSamples(epoch) : this.indices();
    const order = shuffle ? permutation(picked.length, createRng(deriveSeed(this.seed, 'shuffle', epoch))).map((i) => picked[i]!) : picked;
    for (let start = 0; start < order.length; start += this.batchSize) {
      throwIfAborted(signal);
      const idx = order.slice(start, start + this.batchSize);
      const bufs = this.gather(idx);
      const xs = bufs.map((buf, k) => tf.tensor(buf, [idx.length, ...this.shapes[k]!]));
      const labels = labelArray(
        idx.map((s) => this.labels[s]!),
        this.kind,
        this.numClasses,
      );
      const ys = tf.tensor2d(labels, [idx.length, labels.length / idx.length]);
      yield { xs, ys, size: idx.length, host: { xs: bufs, ys: labels } };
    }
  }
}

/** A frozen model between the images and the trained part: its forward pass and the shape of each output. */
export interface FrozenStage {
  forward: ArrayForward;
  shapes: number[][];
  /** Whether forward takes 8-bit RGB pixels (ExtractOptions.pixels). */
  pixels?: boolean;
}

export interface ImageSourceOptions {
  /** Decoded RGB images, size x size x 3 each. */
  images: Uint8Array[];
  labels: number[];
  size: number;
  preprocessing: Preprocessing;
  /** Augmentation drawn anew for every epoch when batches are shuffled (training); null: none. */
  augmentation: AugmentationOptions | null;
  frozen: FrozenStage | null;
  /** With a frozen stage: augment and normalise on the TensorFlow.js backend (see ExtractOptions). */
  augmentOnBackend?: boolean;
  kind: LossKind;
  numClasses: number;
  batchSize: number;
  seed: number;
}

/**
 * Images served as batches, augmented per epoch, optionally through a frozen model. The next batch is prepared
 * and its frozen pass started before the current one is handed out, so a frozen model that runs on another
 * thread computes while the caller trains.
 */
export class ImageSource implements BatchSource {
  constructor(readonly o: ImageSourceOptions) {}

  get size(): number {
    return this.o.labels.length;
  }

  /** The transform of image i in an epoch: drawn anew per (seed, epoch, image) in training, null otherwise. */
  private transform(i: number, epoch: number, augment: boolean): AffineTransform | null {
    if (!augment || !this.o.augmentation) return null;
    const rng = createRng(deriveSeed(this.o.seed, 'augment', epoch, i));
    return sampleTransform(this.o.augmentation, this.o.size, this.o.size, rng);
  }

  /** The normalised (and, in training, augmented) network inputs of the images idx. */
  private inputs(idx: number[], epoch: number, augment: boolean): NetworkInput {
    const { images, size } = this.o;
    if (this.o.augmentOnBackend && this.o.frozen) {
      return inputsOnBackend(this.o, idx.map((i) => images[i]!), idx.map((i) => this.transform(i, epoch, augment)));
    }
    const per = size * size * 3;
    const buf = this.o.frozen?.pixels ? new Uint8Array(idx.length * per) : new Float32Array(idx.length * per);
    idx.forEach((i, j) => networkInput(this.o, images[i]!, this.transform(i, epoch, augment), buf.subarray(j * per, (j + 1) * per)));
    return buf;
  }

  async *batches(epoch: number, shuffle: boolean, signal?: AbortSignal): AsyncGenerator<Batch> {
    const { labels, size, batchSize, frozen } = this.o;
    const n = labels.length;
    const order = shuffle ? permutation(n, createRng(deriveSeed(this.o.seed, 'shuffle', epoch))) : [...Array(n).keys()];
    const starts: number[] = [];
    for (let s = 0; s < n; s += batchSize) starts.push(s);
    type Pending = { idx: number[]; arrays: Promise<Float32Array[]> };
    const start = (k: number): Pending => {
      const idx = order.slice(starts[k]!, starts[k]! + batchSize);
      const input = this.inputs(idx, epoch, shuffle);
      const arrays = frozen ? frozen.forward(input, idx.length) : Promise.resolve([input as Float32Array]);
      // A batch prepared ahead may never be awaited (abort, error): its failure must not go unhandled.
      arrays.catch(() => {});
      return { idx, arrays };
    };
    const shapes = frozen ? frozen.shapes : [[size, size, 3]];
    let next: Pending | null = starts.length ? start(0) : null;
    for (let k = 0; k < starts.length; k++) {
      throwIfAborted(signal);
      const current = next!;
      next = k + 1 < starts.length ? start(k + 1) : null;
      const arrays = await current.arrays;
      throwIfAborted(signal);
      const m = current.idx.length;
      const xs = arrays.map((a, j) => tf.tensor(a, [m, ...shapes[j]!]));
      const ys = labelTensor(
        current.idx.map((i) => labels[i]!),
        this.o.kind,
        this.o.numClasses,
      );
      yield { xs, ys, size: m };
    }
  }
}

const augmentOptions = (opts: AugmentationOptions) => ({ fillMode: opts.fillMode, cval: opts.cval, interpolation: opts.interpolation });

/** One image to send through the frozen model: copy 0 is the image itself, copy k > 0 an augmented version. */
export interface ExtractItem {
  image: number;
  copy: number;
  label: number;
}

/** An image for extraction: decoded pixels, or a promise of them (an Error where it cannot be decoded). */
export type PendingImage = Uint8Array | Promise<Uint8Array | Error>;

export interface ExtractOptions {
  /** Decoded RGB images (size x size x 3), or promises of them: extraction goes on while they decode. */
  images: readonly PendingImage[];
  items: ExtractItem[];
  size: number;
  preprocessing: Preprocessing;
  augmentation: AugmentationOptions | null;
  seed: number;
  batchSize: number;
  /** Computes, for a batch of network inputs, the arrays to keep (for each store, one per store input). */
  forward: ArrayForward;
  /** The stores, in the order of forward's outputs. */
  stores: FeatureStore[];
  /**
   * Augment and normalise on the TensorFlow.js backend (augment-tensor.ts) and hand forward a tensor: where the
   * backend and the frozen model run on a GPU, which resamples far faster than this thread.
   */
  augmentOnBackend?: boolean;
  /**
   * forward takes 8-bit RGB pixels (FrozenModel.pixels): items go as pixels (an augmented copy's values rounded to the
   * nearest pixel value, applyTransformToPixels), and forward normalises them, or its model in int8 reads them as they
   * are. Otherwise items go normalised.
   */
  pixels?: boolean;
  /** Group of an item in the stores (default: its image index plus this offset). */
  groupOffset?: number;
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
}

/** How many batches are sent to the frozen model before the first result is awaited. */
const IN_FLIGHT = 2;

type ItemOptions = Pick<ExtractOptions, 'size' | 'preprocessing' | 'augmentation' | 'seed'>;

/** The transform of an item: null for copy 0 (the image itself), else drawn from a seed of (seed, image, copy). */
function itemTransform(o: ItemOptions, it: ExtractItem): AffineTransform | null {
  if (it.copy === 0 || !o.augmentation) return null;
  const rng = createRng(deriveSeed(o.seed, 'copy', it.image, it.copy));
  return sampleTransform(o.augmentation, o.size, o.size, rng);
}

/**
 * The network input of one item, the image or its copy-th augmented version: normalised into floats, or as 8-bit
 * pixels into bytes (ExtractOptions.pixels).
 */
export function itemInput(o: ItemOptions, it: ExtractItem, image: Uint8Array, out: Float32Array | Uint8Array): void {
  networkInput(o, image, itemTransform(o, it), out);
}

/** The network input of an image resampled under `t` (null: as it is): normalised into floats, or pixels into bytes. */
export function networkInput(o: Pick<ItemOptions, 'size' | 'preprocessing' | 'augmentation'>, image: Uint8Array, t: AffineTransform | null, out: Float32Array | Uint8Array): void {
  const resample = t && o.augmentation ? augmentOptions(o.augmentation) : null;
  if (out instanceof Uint8Array) {
    if (resample) applyTransformToPixels(image, o.size, o.size, t!, resample, out);
    else out.set(image);
  } else if (resample) {
    applyTransform(image, o.size, o.size, 3, t!, { ...resample, out });
    normalizePixels(out, o.preprocessing, out);
  } else {
    normalizePixels(image, o.preprocessing, out);
  }
}

/**
 * Network inputs as a tensor: decoded images (size x size x 3) sent to the backend as they are, each resampled
 * under its transform (null: none) and normalised there by TensorFlow.js ops.
 */
export function inputsOnBackend(
  o: Pick<ItemOptions, 'size' | 'preprocessing' | 'augmentation'>,
  images: Uint8Array[],
  transforms: (AffineTransform | null)[],
): tf.Tensor4D {
  const per = o.size * o.size * 3;
  const pixels = new Float32Array(images.length * per);
  images.forEach((image, j) => pixels.set(image, j * per));
  const aug = o.augmentation;
  return tf.tidy(() => {
    const x = tf.tensor4d(pixels, [images.length, o.size, o.size, 3]);
    const opts = aug ? { fillMode: aug.fillMode, cval: aug.cval, interpolation: aug.interpolation } : {};
    return normalizeBatch(transformBatch(x, transforms, opts), o.preprocessing);
  });
}

/**
 * Sends every item through forward once, in batches, and keeps each output per sample in its store. The
 * augmentation of copy k of image i is drawn from a seed of (seed, i, k), so it is the same on every run.
 * While forward computes, the next batches are prepared here and queued (IN_FLIGHT at a time). Items of an
 * image that cannot be decoded are left out. Returns the number of items sent through forward.
 */
export async function extractFeatures(o: ExtractOptions): Promise<number> {
  const per = o.size * o.size * 3;
  const starts: number[] = [];
  for (let s = 0; s < o.items.length; s += o.batchSize) starts.push(s);
  type Sent = { items: ExtractItem[]; arrays: Float32Array[] };
  // Batch inputs given back by forward once it has read them (FrozenRunOptions.giveBack), filled again: a batch of 32
  // at 288 px is 32 MB, which allocated per batch cost a full collection about every batch.
  const buffers = o.pixels ? new LentBuffers(Uint8Array, IN_FLIGHT + 1) : new LentBuffers(Float32Array, IN_FLIGHT + 1);
  const send = async (k: number): Promise<Sent> => {
    const batch = o.items.slice(starts[k]!, starts[k]! + o.batchSize);
    const images = await Promise.all(batch.map((it) => o.images[it.image]!));
    const items = batch.filter((_, j) => images[j] instanceof Uint8Array);
    if (!items.length) return { items, arrays: [] };
    if (o.augmentOnBackend) {
      const decoded = images.filter((im): im is Uint8Array => im instanceof Uint8Array);
      const input = inputsOnBackend(o, decoded, items.map((it) => itemTransform(o, it)));
      return { items, arrays: await o.forward(input, items.length) };
    }
    const buf = buffers.take(items.length * per, o.batchSize * per);
    let j = 0;
    batch.forEach((it, b) => {
      const image = images[b];
      if (image instanceof Uint8Array) itemInput(o, it, image, buf.subarray(j * per, ++j * per));
    });
    return { items, arrays: await o.forward(buf, items.length, { giveBack: buffers.giveBack }) };
  };
  const inFlight: Promise<Sent>[] = [];
  let sent = 0;
  const fill = () => {
    while (sent < starts.length && inFlight.length < IN_FLIGHT) {
      const p = send(sent++);
      p.catch(() => {});
      inFlight.push(p);
    }
  };
  fill();
  let extracted = 0;
  for (let k = 0; k < starts.length; k++) {
    throwIfAborted(o.signal);
    const { items, arrays } = await inFlight.shift()!;
    extracted += items.length;
    throwIfAborted(o.signal);
    fill();
    items.forEach((it, j) => {
      let a = 0;
      for (const store of o.stores) {
        const values = store.shapes.map((shape) => {
          const arr = arrays[a++]!;
          const sz = sizeOf(shape);
          return arr.subarray(j * sz, (j + 1) * sz);
        });
        store.add(values, it.label, it.image + (o.groupOffset ?? 0));
      }
    });
    o.onProgress?.(Math.min(starts[k]! + o.batchSize, o.items.length), o.items.length);
    // Let timers and I/O callbacks run between batches.
    await new Promise<void>((r) => setImmediate(r));
  }
  return extracted;
}

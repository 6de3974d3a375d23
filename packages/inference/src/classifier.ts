// A trained Graft classifier served by ONNX Runtime: graft.json tells how to apply it (labels, input size, pixel
// normalisation, output activation), the ONNX model runs in a SessionHost's worker threads, and concurrent
// requests share batches through a DynamicBatcher. Images are decoded per request (sharp, on libuv's pool), so
// an undecodable image fails its own request only, before anything of it is queued.
import type { EngineName, Prediction } from '@graft/contract';
import sharp from 'sharp';
import { DynamicBatcher } from './batcher';
import { applyTemperature } from './calibration';
import { checkOodManifest, type OodManifest } from './ood';
import { decodeAll, pixelTransform, resizeKernelOf, type PixelPreprocessing, type ResizeKernel } from './image';
import { LentBuffers, type HostedSession, type SessionHostLike } from './host';

/** The parts of graft.json that say how a classifier is applied. */
export interface ClassifierManifest {
  labels: string[];
  inputSize: number;
  preprocessing: PixelPreprocessing;
  /** 'sigmoid': one output p = probability of labels[1]; 'softmax' (or absent): one probability per label. */
  outputActivation?: 'sigmoid' | 'softmax';
  /** Temperature scaling fitted at training time (absent: the model's probabilities as they are). */
  calibration?: { temperature: number } | null;
  /** How to score images of none of the classes (absent: not scored). */
  outOfDistribution?: OodManifest | null;
}

/** The temperature a manifest asks for (1 where it gives none). */
export function manifestTemperature(m: ClassifierManifest): number {
  return m.calibration?.temperature ?? 1;
}

export type { EngineName, Prediction };

/** Where a request's time went, in milliseconds. */
export interface ClassifyTiming {
  engine: EngineName;
  /** Decoding and resizing the request's images (null where the engine does it inside inference). */
  decodeMs: number | null;
  /** Longest wait of the request's images for their batch to start. */
  queueMs: number;
  /** Longest run of the batches the request's images ran in. */
  inferenceMs: number;
  /** Largest batch the request's images ran in. */
  batchSize: number;
}

export interface ClassifyOptions {
  /** Also classify each image mirrored left to right, and average the two (test-time augmentation). */
  flip?: boolean;
}

export interface ClassifyResult {
  /** Per image, one probability per label, in label order. */
  probabilities: Float32Array[];
  /** Per image, the feature vector graft.json's outOfDistribution names then its dot products with the bank, where the engine gives them. */
  features: Float32Array[] | null;
  timing: ClassifyTiming;
}

/** A loaded classifier, whichever engine runs it. */
export interface ImageClassifier {
  readonly engine: EngineName;
  readonly labels: readonly string[];
  readonly inputSize: number;
  /** Rejects with an error whose `index` names the first image that cannot be decoded. */
  classify(images: Uint8Array[], opts?: ClassifyOptions): Promise<ClassifyResult>;
  /** False once the classifier cannot serve any more (its worker thread died) and must be loaded again. */
  readonly alive: boolean;
  dispose(): Promise<void>;
}

/** The topK most probable labels, most probable first (ties keep label order). */
export function topK(probabilities: Float32Array, labels: readonly string[], k: number): Prediction[] {
  const n = Math.max(1, Math.min(Math.floor(k), labels.length));
  return Array.from(probabilities, (probability, i) => ({ label: labels[i]!, probability }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, n);
}

/** Checks graft.json's fields that serving relies on. */
export function checkManifest(m: unknown): ClassifierManifest {
  const x = m as Partial<ClassifierManifest> | null;
  if (!x || !Array.isArray(x.labels) || x.labels.length < 2 || x.labels.some((l) => typeof l !== 'string')) {
    throw new Error('graft.json must list at least two labels');
  }
  if (!Number.isInteger(x.inputSize) || x.inputSize! < 1) throw new Error('graft.json must give the input size');
  if (!x.preprocessing || typeof x.preprocessing !== 'object') throw new Error('graft.json must describe the preprocessing');
  if (x.outputActivation !== undefined && x.outputActivation !== 'sigmoid' && x.outputActivation !== 'softmax') {
    throw new Error(`graft.json's outputActivation ${JSON.stringify(x.outputActivation)} is neither sigmoid nor softmax`);
  }
  const t = x.calibration?.temperature;
  if (x.calibration != null && !(typeof t === 'number' && Number.isFinite(t) && t > 0)) {
    throw new Error(`graft.json's calibration temperature ${JSON.stringify(t)} is not a positive number`);
  }
  if (x.outOfDistribution != null) checkOodManifest(x.outOfDistribution);
  return x as ClassifierManifest;
}

export interface OnnxClassifierOptions {
  maxBatch?: number;
  maxWaitMs?: number;
  /** Called as each batch starts, with its size. */
  onBatch?(size: number): void;
}

/** Opens an ONNX classifier (as exportOnnx makes from the trained model) in `host`. */
export async function loadOnnxClassifier(
  manifest: ClassifierManifest,
  onnx: Uint8Array,
  host: SessionHostLike,
  opts: OnnxClassifierOptions = {},
): Promise<ImageClassifier> {
  const m = checkManifest(manifest);
  // Only the image pipeline of image.ts is served here; anything else is left to the engine that trained it.
  const p = m.preprocessing as PixelPreprocessing & { resize?: unknown; colorSpace?: unknown; exifRotate?: unknown };
  if ((p.resize ?? 'stretch') !== 'stretch' || (p.colorSpace ?? 'srgb') !== 'srgb' || (p.exifRotate ?? true) !== true) {
    throw new Error(
      `graft.json asks for resize ${JSON.stringify(p.resize)}, colour space ${JSON.stringify(p.colorSpace)}, exifRotate ${JSON.stringify(p.exifRotate)}; served: stretch, srgb, true`,
    );
  }
  const transform = pixelTransform(m.preprocessing);
  const session = await host.open(onnx, { transform });
  try {
    return new OnnxClassifier(m, session, opts);
  } catch (err) {
    await session.dispose();
    throw err;
  }
}

class OnnxClassifier implements ImageClassifier {
  readonly engine = 'onnxruntime' as const;
  readonly labels: readonly string[];
  readonly inputSize: number;
  private readonly kernel: ResizeKernel;
  private readonly width: number;
  private readonly temperature: number;
  /** Values per image after the class outputs: features and bank dot products (0: the model gives none). */
  private readonly featureSize: number;
  private readonly batcher: DynamicBatcher<Uint8Array, { probabilities: Float32Array; features: Float32Array | null }>;
  private disposed = false;

  constructor(
    manifest: ClassifierManifest,
    private readonly session: HostedSession,
    opts: OnnxClassifierOptions,
  ) {
    this.labels = [...manifest.labels];
    this.inputSize = manifest.inputSize;
    this.kernel = resizeKernelOf(manifest.preprocessing);
    const size = manifest.inputSize;
    const inShape = session.inputShape;
    if (inShape.length !== 3 || inShape[0] !== size || inShape[1] !== size || inShape[2] !== 3) {
      throw new Error(`the ONNX model takes [${inShape}], graft.json says ${size}x${size}x3`);
    }
    const out = session.outputShape;
    const n = this.labels.length;
    const ood = manifest.outOfDistribution;
    const extra = ood ? ood.featureSize + ood.bankSize : 0;
    // The class outputs, or the class outputs followed by the features and their dot products with the
    // out-of-distribution bank (withOodOutput).
    const fits = (w: number) => w === n || (w === 1 && n === 2);
    if (out.length !== 1 || !(fits(out[0]!) || (extra > 0 && fits(out[0]! - extra)))) {
      throw new Error(`the ONNX model gives [${out}] per image, which does not fit ${n} labels`);
    }
    this.featureSize = extra > 0 && fits(out[0]! - extra) ? extra : 0;
    this.width = out[0]! - this.featureSize;
    this.temperature = manifestTemperature(manifest);
    const per = size * size * 3;
    const stride = this.width + this.featureSize;
    // Batch inputs lent to the session and given back, one per batch that may run at once: allocated per batch, they
    // drove the main thread's collector through several full collections a second under load.
    const buffers = new LentBuffers(Uint8Array, session.parallelism);
    this.batcher = new DynamicBatcher(
      async (pixels) => {
        const input = buffers.take(pixels.length * per, this.batcher.maxBatch * per);
        pixels.forEach((p, i) => input.set(p, i * per));
        const output = await this.session.run(input, pixels.length, { giveBack: buffers.giveBack });
        if (output.length !== pixels.length * stride) {
          throw new Error(`ONNX Runtime returned ${output.length} values for ${pixels.length} images of ${stride}`);
        }
        return pixels.map((_, i) => ({
          probabilities: this.toProbabilities(output.subarray(i * stride, i * stride + this.width)),
          features: this.featureSize ? output.slice(i * stride + this.width, (i + 1) * stride) : null,
        }));
      },
      { maxBatch: opts.maxBatch, maxWaitMs: opts.maxWaitMs, concurrency: session.parallelism, onBatch: opts.onBatch },
    );
  }

  /** As @graft/vision's toClassProbabilities (one sigmoid unit p gives [1 - p, p]), calibrated. */
  private toProbabilities(row: Float32Array): Float32Array {
    const p = this.width === 1 ? Float32Array.of(1 - row[0]!, row[0]!) : row.slice();
    return applyTemperature(p, this.temperature);
  }

  get alive(): boolean {
    return !this.disposed && this.session.alive;
  }

  async classify(images: Uint8Array[], opts: ClassifyOptions = {}): Promise<ClassifyResult> {
    if (this.disposed) throw new Error('the classifier has been disposed');
    const t0 = performance.now();
    const pixels = await decodeAll(images, this.inputSize, this.kernel);
    if (opts.flip) pixels.push(...pixels.map((p) => mirrored(p, this.inputSize)));
    const decodeMs = performance.now() - t0;
    const results = await Promise.all(this.batcher.submitAll(pixels));
    let queueMs = 0;
    let inferenceMs = 0;
    let batchSize = 0;
    for (const r of results) {
      queueMs = Math.max(queueMs, r.batch.queuedMs);
      inferenceMs = Math.max(inferenceMs, r.batch.runMs);
      batchSize = Math.max(batchSize, r.batch.size);
    }
    const n = images.length;
    const outputs = results.map((r) => r.output);
    const both = (i: number, pick: (o: (typeof outputs)[number]) => Float32Array) => (opts.flip ? mean(pick(outputs[i]!), pick(outputs[i + n]!)) : pick(outputs[i]!));
    return {
      probabilities: images.map((_, i) => both(i, (o) => o.probabilities)),
      features: this.featureSize ? images.map((_, i) => both(i, (o) => o.features!)) : null,
      timing: { engine: this.engine, decodeMs, queueMs, inferenceMs, batchSize },
    };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.batcher.close();
    await this.batcher.drain();
    await this.session.dispose();
  }
}

/** An image of size x size RGB pixels mirrored left to right. */
export function mirrored(pixels: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(pixels.length);
  const row = size * 3;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const from = y * row + x * 3;
      const to = y * row + (size - 1 - x) * 3;
      out[to] = pixels[from]!;
      out[to + 1] = pixels[from + 1]!;
      out[to + 2] = pixels[from + 2]!;
    }
  }
  return out;
}

/** An encoded image mirrored left to right (after its EXIF rotation), as PNG; the bytes as they are if sharp cannot read them. */
async function mirroredEncoded(bytes: Uint8Array): Promise<Uint8Array> {
  try {
    return new Uint8Array(await sharp(bytes).rotate().flop().png().toBuffer());
  } catch {
    return bytes;
  }
}

function mean(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, i) => (v + b[i]!) / 2);
}

/** What @graft/vision's loadClassifier returns (calibrated probabilities), as far as serving uses it. */
export interface TfjsClassifierLike {
  readonly labels: string[];
  readonly inputSize: number;
  probabilities(images: Uint8Array[]): Promise<Float32Array[]>;
  dispose(): void;
}

/**
 * A TF.js classifier behind the same interface, as @graft/vision serves it: each request is one call, which
 * decodes its images and computes on the calling thread; requests are not batched together, and decodeMs is part
 * of inferenceMs.
 */
export function tfjsClassifier(c: TfjsClassifierLike, opts: { onBatch?(size: number): void } = {}): ImageClassifier {
  let disposed = false;
  const running = new Set<Promise<unknown>>();
  return {
    engine: 'tfjs',
    labels: [...c.labels],
    inputSize: c.inputSize,
    get alive() {
      return !disposed;
    },
    async classify(images, classifyOpts = {}) {
      if (disposed) throw new Error('the classifier has been disposed');
      const started = performance.now();
      const all = classifyOpts.flip ? [...images, ...(await Promise.all(images.map(mirroredEncoded)))] : images;
      opts.onBatch?.(all.length);
      const run = c.probabilities(all);
      running.add(run);
      try {
        const out = await run;
        const n = images.length;
        return {
          probabilities: classifyOpts.flip ? images.map((_, i) => mean(out[i]!, out[i + n]!)) : out,
          features: null,
          timing: { engine: 'tfjs', decodeMs: null, queueMs: 0, inferenceMs: performance.now() - started, batchSize: images.length },
        };
      } finally {
        running.delete(run);
      }
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      await Promise.allSettled([...running]);
      c.dispose();
    },
  };
}

// Serving trained classifiers: each model is loaded once (ONNX Runtime in worker threads where it can, else
// TensorFlow.js), kept in a cache bounded by bytes, and its concurrent requests are batched together.
//
// Which engine serves a model ('auto'): ONNX Runtime, from model.int8.onnx or else model.onnx among the artifacts, else
// converted from model.json + weights on load; TF.js (a loader the caller passes, e.g. @graft/vision's
// loadClassifier) where onnxruntime-node does not load or the model cannot be converted or opened. The fallback is
// logged with its reason. 'onnx' never falls back; 'tfjs' never tries ONNX Runtime.
import { availableParallelism } from 'node:os';
import {
  checkManifest,
  loadOnnxClassifier,
  tfjsClassifier,
  topK,
  type ClassifierManifest,
  type ClassifyOptions,
  type ClassifyTiming,
  type EngineName,
  type ImageClassifier,
  type Prediction,
  type TfjsClassifierLike,
} from './classifier';
import { LocalSessionHost } from './local-host';
import { readBank, scoreFromDots, withOodOutput, type OodManifest, type OodResult } from './ood';
import type { SessionHostLike } from './host';
import { ModelCache, type Loaded } from './model-cache';
import { SessionHost } from './session-host';
import { isOnnxRuntimeAvailable } from './session';

export type PredictEngine = 'auto' | 'onnx' | 'tfjs';

/** The int8 model among a model's artifacts, where training kept one. */
export const INT8_FILE = 'model.int8.onnx';

/** A model's files: graft.json, and model.onnx and/or model.json with its weight shards. */
export interface ModelSource {
  /** The files there are, with their sizes. */
  list(): Promise<{ name: string; bytes: number }[]>;
  read(name: string): Promise<Uint8Array>;
}

export type LogFn = (obj: Record<string, unknown>, msg: string) => void;

export interface PredictorOptions {
  /** Default 'auto'. */
  engine?: PredictEngine;
  /** Bound of the model cache in bytes (what the loaded models' files weigh, once per worker thread for ORT). */
  cacheBytes: number;
  /** Largest batch (default 16). */
  maxBatch?: number;
  /** Longest wait of the oldest queued image for a fuller batch, in ms (default 3). */
  maxWaitMs?: number;
  /** Serve model.int8.onnx where a model has one (default true). */
  int8?: boolean;
  /** ONNX Runtime worker threads (default 1). */
  workers?: number;
  /** ONNX Runtime intra-op threads per session (default: the cores divided among the workers). */
  threads?: number;
  /** Loads a classifier in TF.js from its files: the fallback, and the 'tfjs' engine. */
  loadTfjs?(files: Record<string, Uint8Array>): Promise<TfjsClassifierLike>;
  log?: { info: LogFn; warn: LogFn };
  /** Called as each batch starts. */
  onBatch?(size: number, engine: EngineName): void;
}

export interface PredictTiming extends ClassifyTiming {
  /** Time this request waited for its model to load (0 when it was loaded already). */
  loadMs: number;
}

export interface PredictOptions extends ClassifyOptions {
  /** Flag images whose out-of-distribution score is above this (default: graft.json's threshold). */
  oodThreshold?: number;
}

export interface PredictResult {
  /** Per image, its topK labels, most probable first. */
  predictions: Prediction[][];
  /** Per image, one probability per label, in label order (calibrated where graft.json says how). */
  probabilities: Float32Array[];
  /** Per image, how far it lies from the training images; null where the model or its engine gives no features. */
  outOfDistribution: OodResult[] | null;
  labels: readonly string[];
  timing: PredictTiming;
}

const silent: LogFn = () => {};
const utf8 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');

function parseJson(b: Uint8Array, name: string): any {
  try {
    return JSON.parse(utf8(b));
  } catch (err) {
    throw new Error(`${name} is not valid JSON: ${(err as Error).message}`);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** A loaded model: its classifier and, where graft.json has one, how it scores out-of-distribution images. */
interface Served {
  clf: ImageClassifier;
  ood: { manifest: OodManifest } | null;
}

export class Predictor {
  readonly engine: PredictEngine;
  private readonly cache: ModelCache<Served>;
  private readonly log: { info: LogFn; warn: LogFn };
  private host: Promise<SessionHostLike> | null = null;
  private ortAvailable: Promise<boolean> | null = null;
  private closed = false;

  constructor(private readonly opts: PredictorOptions) {
    this.engine = opts.engine ?? 'auto';
    if (!['auto', 'onnx', 'tfjs'].includes(this.engine)) throw new RangeError(`engine must be auto, onnx or tfjs, got ${this.engine}`);
    this.log = opts.log ?? { info: silent, warn: silent };
    this.cache = new ModelCache<Served>({
      maxBytes: opts.cacheBytes,
      onEvict: (key, bytes) => this.log.info({ model: key, bytes }, 'model evicted from the prediction cache'),
    });
  }

  /** Bytes the cached models hold. */
  get cachedBytes(): number {
    return this.cache.bytes;
  }

  /** Keys of the cached models, least recently used first. */
  cachedModels(): string[] {
    return this.cache.keys();
  }

  /**
   * Classifies images with the model under `key`, loading it from `source` if it is not cached. Rejects with an
   * error whose `index` names the first undecodable image.
   */
  async predict(key: string, source: ModelSource, images: Uint8Array[], k: number, opts: PredictOptions = {}): Promise<PredictResult> {
    if (this.closed) throw new Error('the predictor is closed');
    const t0 = performance.now();
    return this.cache.use(
      key,
      () => this.load(key, source),
      async ({ clf, ood }, waitedForLoad) => {
        const loadMs = waitedForLoad ? performance.now() - t0 : 0;
        try {
          const r = await clf.classify(images, { flip: opts.flip });
          let outOfDistribution: OodResult[] | null = null;
          if (ood && r.features) {
            const { manifest } = ood;
            const threshold = opts.oodThreshold ?? manifest.threshold;
            const d = manifest.featureSize;
            outOfDistribution = r.features.map((f) => {
              let norm = 0;
              for (let j = 0; j < d; j++) norm += f[j]! * f[j]!;
              const score = scoreFromDots(f.subarray(d), Math.sqrt(norm), manifest.neighbours);
              return { score, flagged: score > threshold };
            });
          }
          return {
            predictions: r.probabilities.map((p) => topK(p, clf.labels, k)),
            probabilities: r.probabilities,
            outOfDistribution,
            labels: clf.labels,
            timing: { ...r.timing, loadMs },
          };
        } catch (err) {
          if (!clf.alive) this.cache.forget(key);
          throw err;
        }
      },
    );
  }

  /** Drops a model (after it is deleted or replaced); it is disposed once its running requests finish. */
  forget(key: string): void {
    this.cache.forget(key);
  }

  /** Disposes every model and stops the worker threads. May be called more than once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.cache.close();
    const host = await this.host?.catch(() => null);
    await host?.close();
  }

  /** The ONNX Runtime host, started once: worker threads, or the calling thread where they cannot start. */
  private sessionHost(): Promise<SessionHostLike> {
    this.host ??= (async () => {
      const workers = this.opts.workers ?? 1;
      const threads = this.opts.threads ?? Math.max(1, Math.floor(availableParallelism() / workers));
      const host = new SessionHost({ workers, threads });
      try {
        await host.start();
        this.log.info({ workers, threads }, `ONNX Runtime runs /predict's batches in ${workers} worker thread${workers === 1 ? '' : 's'} of ${threads} intra-op thread${threads === 1 ? '' : 's'}`);
        return host;
      } catch (err) {
        this.log.warn(
          { reason: (err as Error).message },
          'ONNX Runtime worker threads do not start: sessions run on the main thread and block it while they compute',
        );
        return new LocalSessionHost(threads);
      }
    })();
    return this.host;
  }

  private async load(key: string, source: ModelSource): Promise<Loaded<Served>> {
    const listing = await source.list();
    const sizes = new Map(listing.map((f) => [f.name, f.bytes]));
    if (!sizes.has('graft.json')) throw new Error('the model has no graft.json');
    const manifest = checkManifest(parseJson(await source.read('graft.json'), 'graft.json'));
    const om = manifest.outOfDistribution ?? null;
    // The bank is needed to convert model.json; model.onnx has it in its graph already.
    const bank = om && sizes.has(om.bankFile) && !sizes.has('model.onnx') ? readBank(await source.read(om.bankFile), om) : null;
    const loaded = await this.loadClassifier(key, source, manifest, sizes, bank);
    return { value: { clf: loaded.value, ood: om ? { manifest: om } : null }, bytes: loaded.bytes, dispose: loaded.dispose };
  }

  private async loadClassifier(
    key: string,
    source: ModelSource,
    manifest: ClassifierManifest,
    sizes: Map<string, number>,
    bank: Float32Array | null,
  ): Promise<Loaded<ImageClassifier>> {
    const started = performance.now();
    const reasons: string[] = [];
    if (this.engine !== 'tfjs') {
      this.ortAvailable ??= isOnnxRuntimeAvailable();
      if (!(await this.ortAvailable)) reasons.push('onnxruntime-node does not load on this machine');
      else {
        const loaded = await this.loadOnnx(key, source, manifest, sizes, bank, reasons);
        if (loaded) {
          this.log.info({ model: key, engine: 'onnxruntime', from: loaded.from, ms: Math.round(performance.now() - started) }, 'model loaded');
          return loaded.model;
        }
      }
      if (this.engine === 'onnx') throw new Error(`ONNX Runtime cannot serve model ${key}: ${reasons.join('; ')}`);
      this.log.warn({ model: key, reason: reasons.join('; ') }, 'serving with TensorFlow.js: ONNX Runtime cannot serve this model');
    }
    const model = await this.loadTfjs(source, sizes);
    this.log.info({ model: key, engine: 'tfjs', ms: Math.round(performance.now() - started) }, 'model loaded');
    return model;
  }

  /** ONNX Runtime from model.onnx, else from model.json converted; null (with `reasons` added to) where neither works. */
  private async loadOnnx(
    key: string,
    source: ModelSource,
    manifest: ClassifierManifest,
    sizes: Map<string, number>,
    bank: Float32Array | null,
    reasons: string[],
  ): Promise<{ model: Loaded<ImageClassifier>; from: string } | null> {
    let host: SessionHostLike;
    try {
      host = await this.sessionHost();
    } catch (err) {
      reasons.push((err as Error).message);
      return null;
    }
    const open = async (onnx: Uint8Array): Promise<Loaded<ImageClassifier>> => {
      const clf = await loadOnnxClassifier(manifest, onnx, host, {
        maxBatch: this.opts.maxBatch,
        maxWaitMs: this.opts.maxWaitMs,
        onBatch: (size) => this.opts.onBatch?.(size, 'onnxruntime'),
      });
      return { value: clf, bytes: onnx.byteLength * host.workers, dispose: () => clf.dispose() };
    };
    // The int8 model where training kept one (it agreed with fp32 on the validation images), else fp32.
    const files = this.opts.int8 === false ? ['model.onnx'] : [INT8_FILE, 'model.onnx'];
    for (const file of files.filter((f) => sizes.has(f))) {
      try {
        return { model: await open(await source.read(file)), from: file };
      } catch (err) {
        reasons.push(`${file}: ${(err as Error).message}`);
        this.log.warn({ model: key, reason: (err as Error).message }, `${file} does not open; trying the next form of the model`);
      }
    }
    if (!sizes.has('model.json')) {
      reasons.push('the model has no model.json to convert');
      return null;
    }
    let onnx: Uint8Array;
    try {
      const modelJson = parseJson(await source.read('model.json'), 'model.json');
      const paths: string[] = (modelJson.weightsManifest ?? []).flatMap((g: { paths: string[] }) => g.paths);
      const weights = concat(await Promise.all(paths.map((p) => source.read(p))));
      const ood = manifest.outOfDistribution;
      // With an out-of-distribution bank the graph also outputs the features and their dot products with it.
      const model = ood && bank ? withOodOutput(modelJson, weights, ood, bank) : { modelJson, weights };
      onnx = await host.convert(model.modelJson, model.weights);
    } catch (err) {
      const e = err as Error;
      reasons.push(`${e.name === 'UnsupportedLayerError' ? 'conversion to ONNX: ' : ''}${e.message}`);
      return null;
    }
    try {
      return { model: await open(onnx), from: 'model.json' };
    } catch (err) {
      reasons.push((err as Error).message);
      return null;
    }
  }

  private async loadTfjs(source: ModelSource, sizes: Map<string, number>): Promise<Loaded<ImageClassifier>> {
    if (!this.opts.loadTfjs) throw new Error('no TensorFlow.js loader was given to the predictor');
    const names = [...sizes.keys()].filter((n) => n === 'graft.json' || n === 'model.json' || n.endsWith('.bin') || /^group\d+-shard\d+of\d+/.test(n));
    const files: Record<string, Uint8Array> = {};
    await Promise.all(names.map(async (n) => (files[n] = await source.read(n))));
    const c = await this.opts.loadTfjs(files);
    const clf = tfjsClassifier(c, { onBatch: (size) => this.opts.onBatch?.(size, 'tfjs') });
    const bytes = names.filter((n) => n !== 'graft.json').reduce((s, n) => s + (sizes.get(n) ?? 0), 0);
    return { value: clf, bytes, dispose: () => clf.dispose() };
  }
}

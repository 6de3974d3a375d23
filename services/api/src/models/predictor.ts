// Serves /predict with @graft/inference's Predictor: trained classifiers loaded once from their S3 artifacts, kept
// in a cache bounded by bytes, run by ONNX Runtime in worker threads with concurrent requests batched together,
// and TensorFlow.js (@graft/vision's loadClassifier) as the fallback where ONNX Runtime cannot serve a model.
import { loadClassifier } from '@graft/vision';
import {
  Predictor as InferencePredictor,
  type EngineName,
  type LogFn,
  type OodResult,
  type Prediction,
  type PredictEngine,
  type PredictOptions,
  type PredictTiming,
} from '@graft/inference';
import { undecodableImage } from './predict-images';
import type { ModelService } from './service';

export type { Prediction, PredictTiming };

export interface PredictorSettings {
  engine?: PredictEngine;
  /** Serve model.int8.onnx where a model has one (default true). */
  int8?: boolean;
  maxBatch?: number;
  maxWaitMs?: number;
  /** ONNX Runtime worker threads and intra-op threads per session (defaults: 1 worker using every core). */
  workers?: number;
  threads?: number;
  log?: { info: LogFn; warn: LogFn };
  /** Called as each inference batch starts, with its size and the engine that runs it. */
  onBatch?(size: number, engine: EngineName): void;
}

export class Predictor {
  private settings: PredictorSettings;
  private inner: InferencePredictor | null = null;
  private closed = false;

  constructor(
    private readonly models: ModelService,
    private readonly maxBytes: number,
    settings: PredictorSettings = {},
  ) {
    this.settings = settings;
  }

  /** Changes the settings; models loaded from now on use them (those loaded before are dropped). */
  configure(settings: PredictorSettings): void {
    this.settings = { ...this.settings, ...settings };
    const old = this.inner;
    this.inner = null;
    void old?.close();
  }

  private predictor(): InferencePredictor {
    if (this.closed) throw new Error('the predictor is closed');
    this.inner ??= new InferencePredictor({
      ...this.settings,
      cacheBytes: this.maxBytes,
      loadTfjs: (files) => loadClassifier(files),
    });
    return this.inner;
  }

  async predict(tenant: string, modelId: string, images: Uint8Array[], topK: number): Promise<Prediction[][]> {
    return (await this.predictTimed(tenant, modelId, images, topK)).predictions;
  }

  /** As predict, with where the time went. */
  async predictTimed(
    tenant: string,
    modelId: string,
    images: Uint8Array[],
    topK: number,
    opts: PredictOptions = {},
  ): Promise<{ predictions: Prediction[][]; outOfDistribution: OodResult[] | null; timing: PredictTiming }> {
    const source = {
      list: () => this.models.artifacts(tenant, modelId),
      read: (name: string) => this.models.artifactBuffer(tenant, modelId, name),
    };
    try {
      const r = await this.predictor().predict(`${tenant}/${modelId}`, source, images, topK, opts);
      return { predictions: r.predictions, outOfDistribution: r.outOfDistribution, timing: r.timing };
    } catch (err: any) {
      if (typeof err?.index === 'number') {
        throw undecodableImage(err.index);
      }
      throw err;
    }
  }

  /** Drops a model from the cache (after DELETE). */
  forget(tenant: string, modelId: string): void {
    this.inner?.forget(`${tenant}/${modelId}`);
  }

  /** Disposes the models and stops the inference threads. May be called more than once. */
  async close(): Promise<void> {
    this.closed = true;
    const inner = this.inner;
    this.inner = null;
    await inner?.close();
  }
}

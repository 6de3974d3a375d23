// Serves /predict: trained classifiers loaded once and kept in a cache bounded by their size in bytes.
import { loadClassifier, type Classifier } from '@graft/vision';
import { ApiError } from '../errors';
import type { ModelService } from './service';

interface Entry {
  classifier: Promise<Classifier>;
  bytes: number;
  lastUsed: number;
}

export interface Prediction {
  label: string;
  probability: number;
}

export class Predictor {
  private readonly cache = new Map<string, Entry>();

  constructor(
    private readonly models: ModelService,
    private readonly maxBytes: number,
  ) {}

  async predict(tenant: string, modelId: string, images: Uint8Array[], topK: number): Promise<Prediction[][]> {
    const classifier = await this.load(tenant, modelId);
    try {
      return await classifier.predict(images, topK);
    } catch (err: any) {
      if (typeof err?.index === 'number') {
        throw new ApiError('INVALID_IMAGE', `image ${err.index} is not a decodable JPEG, PNG or WebP image`, {
          index: err.index,
        });
      }
      throw err;
    }
  }

  private load(tenant: string, modelId: string): Promise<Classifier> {
    const key = `${tenant}/${modelId}`;
    const hit = this.cache.get(key);
    if (hit) {
      hit.lastUsed = Date.now();
      return hit.classifier;
    }
    const entry: Entry = { classifier: Promise.resolve(null as never), bytes: 0, lastUsed: Date.now() };
    entry.classifier = (async () => {
      const files: Record<string, Uint8Array> = {};
      for (const a of await this.models.artifacts(tenant, modelId)) {
        if (a.name === 'model.json' || a.name === 'graft.json' || a.name.endsWith('.bin')) {
          files[a.name] = await this.models.artifactBuffer(tenant, modelId, a.name);
          entry.bytes += a.bytes;
        }
      }
      return loadClassifier(files);
    })();
    entry.classifier.catch(() => this.cache.delete(key));
    this.cache.set(key, entry);
    void entry.classifier.then(() => this.evict(key));
    return entry.classifier;
  }

  /** Drops a model from the cache (after DELETE). */
  forget(tenant: string, modelId: string): void {
    const key = `${tenant}/${modelId}`;
    const e = this.cache.get(key);
    this.cache.delete(key);
    void e?.classifier.then((c) => c.dispose(), () => {});
  }

  private evict(keep: string): void {
    let total = [...this.cache.values()].reduce((s, e) => s + e.bytes, 0);
    const byAge = [...this.cache.entries()].sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [key, e] of byAge) {
      if (total <= this.maxBytes) break;
      if (key === keep) continue;
      this.cache.delete(key);
      total -= e.bytes;
      void e.classifier.then((c) => c.dispose(), () => {});
    }
  }

  close(): void {
    for (const e of this.cache.values()) void e.classifier.then((c) => c.dispose(), () => {});
    this.cache.clear();
  }
}

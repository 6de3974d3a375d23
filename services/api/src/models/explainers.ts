// Serves /explain with @graft/vision's Grad-CAM: a model's TF.js files loaded once and kept among the few most
// recently explained (gradients need TF.js; ONNX Runtime only runs forward). Explanations run one at a time per
// API process, as TF.js computes on the calling thread.
import { loadExplainer, type Explainer, type Explanation } from '@graft/vision';
import type { ModelService } from './service';

/** Models kept loaded for explanations. */
const KEPT = 2;

export class Explainers {
  private readonly loaded = new Map<string, Promise<Explainer>>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly models: ModelService) {}

  async explain(tenant: string, modelId: string, image: Uint8Array, label?: string): Promise<Explanation> {
    const explainer = await this.get(tenant, modelId);
    const run = this.queue.then(() => explainer.explain(image, label));
    this.queue = run.catch(() => {});
    return run;
  }

  private get(tenant: string, modelId: string): Promise<Explainer> {
    const key = `${tenant}/${modelId}`;
    let p = this.loaded.get(key);
    if (p) {
      this.loaded.delete(key);
    } else {
      p = loadExplainer((name) => this.models.artifactBuffer(tenant, modelId, name));
      p.catch(() => this.loaded.delete(key));
    }
    this.loaded.set(key, p);
    while (this.loaded.size > KEPT) {
      const [oldest, old] = this.loaded.entries().next().value!;
      this.loaded.delete(oldest);
      void old.then((e) => this.queue.then(() => e.dispose())).catch(() => {});
    }
    return p;
  }

  /** Drops a model (after DELETE). */
  forget(tenant: string, modelId: string): void {
    const key = `${tenant}/${modelId}`;
    const p = this.loaded.get(key);
    this.loaded.delete(key);
    void p?.then((e) => this.queue.then(() => e.dispose())).catch(() => {});
  }

  async close(): Promise<void> {
    for (const key of [...this.loaded.keys()]) {
      const [tenant, id] = key.split('/') as [string, string];
      this.forget(tenant, id);
    }
    await this.queue.catch(() => {});
  }
}

// Trained models: records and artifacts in S3, written by the worker.
import type { ModelRecord } from '@graft/contract';
import { keys, type Storage } from '@graft/storage';

export type { ModelRecord };

/** How long /predict trusts a remembered model record (a delete through another API process shows after this). */
const RECORD_TTL_MS = 30_000;
const RECORD_CACHE_MAX = 1_000;

export class ModelService {
  private readonly records = new Map<string, { rec: ModelRecord; at: number }>();

  constructor(private readonly storage: Storage) {}

  get(tenant: string, id: string): Promise<ModelRecord | null> {
    return this.storage.getJsonOrNull<ModelRecord>(keys.modelRecord(tenant, id));
  }

  /**
   * The record for the /predict hot path: models never change once published, so a record read from S3 is
   * remembered for a while instead of being read on every request. Missing models are not remembered.
   */
  async getCached(tenant: string, id: string): Promise<ModelRecord | null> {
    const key = `${tenant}/${id}`;
    const hit = this.records.get(key);
    if (hit && Date.now() - hit.at < RECORD_TTL_MS) return hit.rec;
    const rec = await this.get(tenant, id);
    this.records.delete(key);
    if (rec) {
      if (this.records.size >= RECORD_CACHE_MAX) this.records.delete(this.records.keys().next().value!);
      this.records.set(key, { rec, at: Date.now() });
    }
    return rec;
  }

  async list(tenant: string): Promise<ModelRecord[]> {
    const prefixes = await this.storage.listPrefixes(keys.models(tenant));
    const all = await Promise.all(prefixes.map((p) => this.storage.getJsonOrNull<ModelRecord>(`${p}record.json`)));
    return all.filter((m): m is ModelRecord => !!m).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  async artifacts(tenant: string, id: string): Promise<{ name: string; bytes: number }[]> {
    const prefix = keys.modelArtifacts(tenant, id);
    const out: { name: string; bytes: number }[] = [];
    for await (const o of this.storage.listObjects(prefix)) out.push({ name: o.key.slice(prefix.length), bytes: o.size });
    return out;
  }

  artifact(tenant: string, id: string, file: string) {
    return this.storage.getStream(keys.modelArtifact(tenant, id, file));
  }

  artifactBuffer(tenant: string, id: string, file: string) {
    return this.storage.getBuffer(keys.modelArtifact(tenant, id, file));
  }

  async delete(tenant: string, id: string): Promise<void> {
    this.records.delete(`${tenant}/${id}`);
    await this.storage.deleteKeys([keys.modelRecord(tenant, id)]);
    await this.storage.deletePrefix(keys.model(tenant, id));
  }
}

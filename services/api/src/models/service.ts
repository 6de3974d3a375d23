// Trained models: records and artifacts in S3, written by the worker.
import { keys, type Storage } from '@graft/storage';

export interface ModelRecord {
  id: string;
  jobId: string;
  datasetId: string;
  labels: string[];
  backbone: string | null;
  method: string;
  inputSize: number;
  metrics: Record<string, unknown>;
  artifacts: string[];
  createdAt: string;
}

export class ModelService {
  constructor(private readonly storage: Storage) {}

  get(tenant: string, id: string): Promise<ModelRecord | null> {
    return this.storage.getJsonOrNull<ModelRecord>(keys.modelRecord(tenant, id));
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
    await this.storage.deleteKeys([keys.modelRecord(tenant, id)]);
    await this.storage.deletePrefix(keys.model(tenant, id));
  }
}

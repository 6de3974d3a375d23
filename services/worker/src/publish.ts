// Publishing a trained model to storage. Every artifact is written and read back whole before the record, and the
// record last: the model exists for the API once its record does, and by then each of its files can be served.
// A job is only reported succeeded after this resolves.
import type { ModelRecord } from '@graft/contract';
import { keys, type Storage } from '@graft/storage';

/** Writes the model's artifacts, then its record (the fields given, and `artifacts`: the names of its files). */
export async function publishModel(
  storage: Storage,
  tenant: string,
  artifacts: Record<string, Uint8Array | string>,
  record: Omit<ModelRecord, 'artifacts'>,
): Promise<void> {
  for (const [name, data] of Object.entries(artifacts)) {
    const type = name.endsWith('.json') ? 'application/json' : 'application/octet-stream';
    await storage.putVerified(keys.modelArtifact(tenant, record.id, name), data, type);
  }
  const full: ModelRecord = { ...record, artifacts: Object.keys(artifacts) };
  await storage.putVerified(keys.modelRecord(tenant, record.id), JSON.stringify(full), 'application/json');
}


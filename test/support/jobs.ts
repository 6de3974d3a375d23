// Training jobs put straight into the queue, and datasets straight into the bucket, for tests of the queue and the
// worker that run without the API.
import { randomBytes } from 'node:crypto';
import { keys, type Storage } from '@graft/storage';
import { queuedJobRecord, type TrainQueue } from '@graft/queue';
import { acceptConfig, plannedEpochs, type TrainingConfigInput } from '@graft/contract';
import type { Entry } from './images';

/** A dataset as the worker reads it: its images, index.json and, last, manifest.json (`<split>/<class>/<n>.jpg`). */
export async function putDataset(storage: Storage, tenant: string, entries: Entry[]): Promise<string> {
  const id = `ds_${randomBytes(6).toString('hex')}`;
  const images = entries.map((e) => {
    const [split, label] = e.path.split('/') as ['train' | 'validation' | 'test', string];
    return { split, label, key: `${keys.dataset(tenant, id)}images/${e.path}`, path: e.path, data: e.data };
  });
  await Promise.all(images.map((im) => storage.put(im.key, im.data, 'image/jpeg')));
  await storage.putJson(keys.datasetIndex(tenant, id), { images: images.map(({ data: _d, ...im }) => im) });
  await storage.putJson(keys.datasetManifest(tenant, id), { id, classes: [...new Set(images.map((im) => im.label))].sort() });
  return id;
}

/** Enqueues a training job as the API does: its record, and a payload with the config resolved (input size given). */
export async function enqueueJob(queue: TrainQueue, tenant: string, datasetId: string, config: TrainingConfigInput & { inputSize: number }): Promise<string> {
  const resolved = acceptConfig(config, config.inputSize);
  const id = `job_${randomBytes(6).toString('hex')}`;
  const rec = queuedJobRecord({ id, tenant, datasetId, epochs: plannedEpochs(resolved), config: resolved });
  await queue.enqueue(rec, { jobId: id, tenant, datasetId, manifestKey: keys.datasetManifest(tenant, datasetId), config: resolved });
  return id;
}

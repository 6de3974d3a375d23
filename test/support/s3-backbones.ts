// Backbone weights in an S3 bucket for tests: a folder of shared/models copied under a prefix of its own bucket.
import fs from 'node:fs';
import path from 'node:path';
import type { Storage } from '@graft/storage';
import { uniqueName } from './services';

export const SHARED_MODELS = new URL('../../../shared/models', import.meta.url).pathname;

/** Uploads shared/models/<name>/* to `s3://<new bucket>/<prefix><name>/`; returns the s3:// URL of the prefix. */
export async function uploadBackbone(storage: Storage, name: string, prefix = 'team/backbones/'): Promise<string> {
  const bucket = uniqueName('graft-weights');
  const weights = storage.forBucket(bucket);
  await weights.ensureBucket();
  const dir = path.join(SHARED_MODELS, name);
  await Promise.all(fs.readdirSync(dir).map((file) => weights.put(`${prefix}${name}/${file}`, fs.readFileSync(path.join(dir, file)))));
  return `s3://${bucket}/${prefix}`;
}

// POST /v1/datasets/import: a dataset read from an S3 prefix the service can reach. The objects are packed
// into a tar on local disk as they are listed, then ingested exactly like an uploaded archive (same layout
// rules, limits and image checks).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pack as tarPack } from 'tar-stream';
import { pipeline } from 'node:stream/promises';
import { parseS3Url, type S3Url, type Storage } from '@graft/storage';
import { ApiError } from '../errors';

export function parseS3Source(source: string): S3Url {
  const location = parseS3Url(source);
  if (!location) throw new ApiError('VALIDATION_FAILED', `source must look like s3://bucket/prefix/ (got ${JSON.stringify(source)})`, { field: 'source' });
  return location;
}

/** Packs every object under the prefix into a tar file; paths inside are relative to the prefix. */
export async function packPrefix(
  storage: Storage,
  bucket: string,
  prefix: string,
  limits: { entries: number; bytes: number },
): Promise<{ file: string; cleanup(): void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-import-'));
  const file = path.join(dir, 'import.tar');
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  const tar = tarPack();
  const written = pipeline(tar, fs.createWriteStream(file));
  try {
    const source = storage.forBucket(bucket);
    let count = 0;
    let total = 0;
    for await (const o of source.listObjects(prefix)) {
      const name = o.key.slice(prefix.length);
      if (!name || name.endsWith('/')) continue;
      if (++count > limits.entries) {
        throw new ApiError('TOO_MANY_ENTRIES', `the prefix holds more than ${limits.entries} objects (GRAFT_MAX_ARCHIVE_ENTRIES)`);
      }
      total += o.size;
      if (total > limits.bytes) throw new ApiError('ARCHIVE_TOO_LARGE', `the prefix holds more than ${limits.bytes} bytes`);
      const data = await source.getBuffer(o.key);
      await new Promise<void>((resolve, reject) => tar.entry({ name, size: data.length }, data, (e) => (e ? reject(e) : resolve())));
    }
    if (count === 0) throw new ApiError('NO_IMAGES', `nothing found under s3://${bucket}/${prefix}`);
    tar.finalize();
    await written;
    return { file, cleanup };
  } catch (err: any) {
    tar.destroy();
    await written.catch(() => {});
    cleanup();
    if (err?.name === 'NoSuchBucket' || err?.$metadata?.httpStatusCode === 404) {
      throw new ApiError('VALIDATION_FAILED', `bucket '${bucket}' does not exist or cannot be reached`, { field: 'source' });
    }
    if (err?.$metadata?.httpStatusCode === 403) {
      throw new ApiError('VALIDATION_FAILED', `the service may not read s3://${bucket}/${prefix}`, { field: 'source' });
    }
    throw err;
  }
}

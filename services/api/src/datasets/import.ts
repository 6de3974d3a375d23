// POST /v1/datasets/import: a dataset read from an S3 prefix that the operator lets the tenant read
// (GRAFT_IMPORT_SOURCES). Only image objects (.jpg, .jpeg, .png, .webp) within the per-file size limit are
// downloaded, one at a time, and packed into a tar on local disk as they are listed; the tar is then ingested
// exactly like an uploaded archive (same layout rules, limits and image checks).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pack as tarPack } from 'tar-stream';
import { pipeline } from 'node:stream/promises';
import { parseS3Url, type S3Url, type Storage } from '@graft/storage';
import type { GraftConfig } from '@graft/config';
import { ApiError } from '../errors';

export function parseS3Source(source: string): S3Url {
  const location = parseS3Url(source);
  if (!location) throw new ApiError('VALIDATION_FAILED', `source must look like s3://bucket/prefix/ (got ${JSON.stringify(source)})`, { field: 'source' });
  return location;
}

/**
 * Refuses a source outside the tenant's import sources with one answer, whether or not the bucket exists, so
 * that a caller learns nothing about buckets it may not read.
 */
export function checkImportAllowed(tenant: string, source: S3Url, allowed: GraftConfig['importSources']): void {
  const ok = allowed.some(
    (a) => (a.tenant === tenant || a.tenant === '*') && a.bucket === source.bucket && source.prefix.startsWith(a.prefix),
  );
  if (!ok) {
    throw new ApiError(
      'IMPORT_NOT_ALLOWED',
      `s3://${source.bucket}/${source.prefix} is not among the import sources this tenant may read (GRAFT_IMPORT_SOURCES)`,
      { field: 'source' },
    );
  }
}

const IMAGE_KEY = /\.(jpe?g|png|webp)$/i;

/** Packs every object under the prefix into a tar file; paths inside are relative to the prefix. */
export async function packPrefix(
  storage: Storage,
  bucket: string,
  prefix: string,
  limits: { entries: number; bytes: number; objectBytes: number },
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
      if (!name || name.endsWith('/') || !IMAGE_KEY.test(name)) continue;
      if (o.size > limits.objectBytes) {
        throw new ApiError('ENTRY_TOO_LARGE', `'${name}' is larger than the per-file limit of ${limits.objectBytes} bytes (GRAFT_MAX_ENTRY_BYTES)`, {
          path: name,
          limit: limits.objectBytes,
          size: o.size,
        });
      }
      if (++count > limits.entries) {
        throw new ApiError('TOO_MANY_ENTRIES', `the prefix holds more than ${limits.entries} objects (GRAFT_MAX_ARCHIVE_ENTRIES)`);
      }
      total += o.size;
      if (total > limits.bytes) throw new ApiError('ARCHIVE_TOO_LARGE', `the prefix holds more than ${limits.bytes} bytes`);
      const data = await source.getBuffer(o.key);
      // The listing's size is what was checked; an object replaced meanwhile by a larger one is not taken.
      if (data.length > limits.objectBytes) {
        throw new ApiError('ENTRY_TOO_LARGE', `'${name}' is larger than the per-file limit of ${limits.objectBytes} bytes (GRAFT_MAX_ENTRY_BYTES)`, {
          path: name,
          limit: limits.objectBytes,
        });
      }
      await new Promise<void>((resolve, reject) => tar.entry({ name, size: data.length }, data, (e) => (e ? reject(e) : resolve())));
    }
    if (count === 0) throw new ApiError('NO_IMAGES', `no images (.jpg, .jpeg, .png, .webp) under s3://${bucket}/${prefix}`);
    tar.finalize();
    await written;
    return { file, cleanup };
  } catch (err: any) {
    tar.destroy();
    await written.catch(() => {});
    cleanup();
    // A missing bucket and a refused one read the same.
    if (err?.name === 'NoSuchBucket' || err?.$metadata?.httpStatusCode === 404 || err?.$metadata?.httpStatusCode === 403) {
      throw new ApiError('VALIDATION_FAILED', `s3://${bucket}/${prefix} cannot be read`, { field: 'source' });
    }
    throw err;
  }
}

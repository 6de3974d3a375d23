// POST /v1/datasets/import: a dataset read from an S3 prefix that the operator lets the tenant read
// (GRAFT_IMPORT_SOURCES). Only image objects (.jpg, .jpeg, .png, .webp) within the per-file size limit are
// downloaded, several at a time in listing order, and packed into a tar on local disk in that order; the tar is then
// ingested exactly like an uploaded archive (same layout rules, limits and image checks).
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

/**
 * Objects downloaded at once, and the most bytes (by their listed sizes) downloading at once beyond the first: a GET
 * is mostly waiting on the store. Dogs vs Cats' 3,000 images through a proxy adding 20 ms a request (bench/ingest.ts
 * --latency) were packed at 495 images/s against 39 one at a time; 50 ms, 278 against 18.
 */
export const IMPORT_READS_AT_ONCE = 16;
const IMPORT_READ_AHEAD_BYTES = 64 * 1024 * 1024;

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
    // Downloads in flight, in listing order; each is written to the tar once it and every one before it are in.
    const reading: { name: string; size: number; data: Promise<Buffer> }[] = [];
    let readingBytes = 0;
    const writeOldest = async () => {
      const { name, size, data } = reading.shift()!;
      readingBytes -= size;
      const bytes = await data;
      // The listing's size is what was checked; an object replaced meanwhile by a larger one is not taken.
      if (bytes.length > limits.objectBytes) {
        throw new ApiError('ENTRY_TOO_LARGE', `'${name}' is larger than the per-file limit of ${limits.objectBytes} bytes (GRAFT_MAX_ENTRY_BYTES)`, {
          path: name,
          limit: limits.objectBytes,
        });
      }
      await new Promise<void>((resolve, reject) => tar.entry({ name, size: bytes.length }, bytes, (e) => (e ? reject(e) : resolve())));
    };
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
      while (reading.length >= IMPORT_READS_AT_ONCE || (reading.length > 0 && readingBytes + o.size > IMPORT_READ_AHEAD_BYTES)) await writeOldest();
      const data = source.getBuffer(o.key);
      data.catch(() => {}); // awaited in order by writeOldest; a failure left behind by an earlier one must not go unhandled
      reading.push({ name, size: o.size, data });
      readingBytes += o.size;
    }
    while (reading.length > 0) await writeOldest();
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

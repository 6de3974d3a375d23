// Datasets: an archive spooled to disk, ingested image by image into S3, then a manifest written last.
// A dataset exists once its manifest exists; a failed upload leaves nothing behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { GraftConfig } from '@graft/config';
import { keys, type Storage } from '@graft/storage';
import { ApiError } from '../errors';
import { newId } from '../ids';
import { ingestArchive, IngestError, type ArchiveFormat } from './ingest';
import { phashHex } from './fingerprint';
import { analyseDataset } from './health';
import type { DatasetIndex, DatasetManifest } from '@graft/contract';

export const EXT: Record<string, string> = { jpeg: 'jpg', png: 'png', webp: 'webp' };


/** Streams a body to a temporary file, failing with 413 past the byte limit. */
export async function spool(body: Readable, limit: number): Promise<{ file: string; bytes: number; head: Buffer; cleanup(): void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-upload-'));
  const file = path.join(dir, `upload-${randomBytes(4).toString('hex')}`);
  let bytes = 0;
  let head = Buffer.alloc(0);
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (head.length < 512) head = Buffer.concat([head, chunk.subarray(0, 512 - head.length)]);
      if (bytes > limit) {
        cb(new ApiError('PAYLOAD_TOO_LARGE', `the upload exceeds the limit of ${limit} bytes (GRAFT_MAX_UPLOAD_BYTES)`));
        return;
      }
      cb(null, chunk);
    },
  });
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    await pipeline(body, counter, fs.createWriteStream(file));
  } catch (err) {
    cleanup();
    if ((body as any).truncated) {
      throw new ApiError('PAYLOAD_TOO_LARGE', `the upload exceeds the limit of ${limit} bytes (GRAFT_MAX_UPLOAD_BYTES)`);
    }
    throw err;
  }
  if ((body as any).truncated) {
    cleanup();
    throw new ApiError('PAYLOAD_TOO_LARGE', `the upload exceeds the limit of ${limit} bytes (GRAFT_MAX_UPLOAD_BYTES)`);
  }
  return { file, bytes, head, cleanup };
}

export const storageQuotaExceeded = (limit: number, needed?: number) =>
  new ApiError(
    'STORAGE_QUOTA_EXCEEDED',
    `the tenant's datasets may take at most ${limit} bytes (GRAFT_MAX_TENANT_STORAGE_BYTES)${needed !== undefined ? `; this one would need ${needed} more than is left` : ''}; delete a dataset first`,
    { limit },
  );

export class DatasetService {
  constructor(
    private readonly storage: Storage,
    private readonly config: GraftConfig,
  ) {}

  /** A dataset name means one dataset: a name in use is refused (409) before any image is read. */
  async assertNameFree(tenant: string, name: string | undefined): Promise<void> {
    const wanted = name?.trim();
    if (!wanted) return;
    const taken = (await this.list(tenant)).find((d) => d.name === wanted);
    if (taken) {
      throw new ApiError('DATASET_NAME_TAKEN', `a dataset named '${wanted}' exists (${taken.id}); choose another name, or delete that dataset first`, {
        field: 'name',
        datasetId: taken.id,
      });
    }
  }

  /**
   * Ingests an archive as a new dataset. `room` is the tenant's storage left (GRAFT_MAX_TENANT_STORAGE_BYTES): a
   * dataset larger than that is removed again and refused.
   */
  async create(tenant: string, name: string | undefined, file: string, format: ArchiveFormat, room = Infinity): Promise<DatasetManifest> {
    await this.assertNameFree(tenant, name);
    const id = newId('ds');
    const prefix = keys.dataset(tenant, id);
    const written = new Set<string>();
    try {
      const l = this.config.limits;
      const result = await ingestArchive(file, format, {
        limits: {
          maxEntries: l.archiveEntries,
          maxTotalBytes: l.uncompressedBytes,
          maxEntryBytes: l.entryBytes,
          maxCompressionRatio: l.compressionRatio,
          maxImagePixels: l.imagePixels,
        },
        put: async ({ sha256, format: fmt }, data) => {
          const key = keys.datasetImage(tenant, id, sha256, EXT[fmt] ?? fmt);
          written.add(key);
          await this.storage.put(key, data, `image/${fmt}`);
        },
      });
      if (result.bytes > room) throw storageQuotaExceeded(this.config.limits.tenantStorageBytes, result.bytes);
      const health = analyseDataset({ classes: result.classes, splits: result.splits, images: result.images, copies: result.copies });
      const index: DatasetIndex = {
        images: result.images.map((im) => ({
          id: im.id,
          path: im.path,
          split: im.split,
          label: im.label,
          key: keys.datasetImage(tenant, id, im.sha256, EXT[im.format] ?? im.format),
          width: im.width,
          height: im.height,
          phash: phashHex(im.fingerprint),
        })),
        leakedImageIds: health.leakedImageIds,
        nearDuplicateGroups: health.nearDuplicateImageIds,
      };
      const manifest: DatasetManifest = {
        id,
        name: name?.trim() || id,
        status: 'ready',
        classes: result.classes,
        splits: result.splits,
        imageCount: result.imageCount,
        bytes: result.bytes,
        rejected: result.rejected,
        duplicates: result.duplicates,
        warnings: result.warnings,
        health: health.summary,
        createdAt: new Date().toISOString(),
      };
      await this.storage.putJson(keys.datasetIndex(tenant, id), index);
      await this.storage.putJson(keys.datasetHealth(tenant, id), { datasetId: id, ...health });
      await this.storage.putJson(keys.datasetManifest(tenant, id), manifest);
      return manifest;
    } catch (err) {
      // Nothing of a rejected upload stays: remove what was written under the dataset's prefix.
      await this.storage.deletePrefix(prefix).catch(() => {});
      if (err instanceof IngestError && err.status < 500) {
        throw new ApiError(err.code, err.message, err.details as Record<string, unknown> | undefined);
      }
      throw err;
    }
  }

  async get(tenant: string, id: string): Promise<DatasetManifest | null> {
    return this.storage.getJsonOrNull<DatasetManifest>(keys.datasetManifest(tenant, id));
  }

  async list(tenant: string): Promise<DatasetManifest[]> {
    const prefixes = await this.storage.listPrefixes(keys.datasets(tenant));
    const all = await Promise.all(
      prefixes.map((p) => this.storage.getJsonOrNull<DatasetManifest>(`${p}manifest.json`)),
    );
    return all.filter((m): m is DatasetManifest => !!m).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /** Bytes of the tenant's datasets, and the room left under GRAFT_MAX_TENANT_STORAGE_BYTES. */
  async usage(tenant: string): Promise<{ bytes: number; room: number }> {
    const bytes = (await this.list(tenant)).reduce((a, m) => a + (m.bytes ?? 0), 0);
    return { bytes, room: this.config.limits.tenantStorageBytes - bytes };
  }

  async delete(tenant: string, id: string): Promise<void> {
    // The manifest goes first, so a half-deleted dataset is already invisible.
    await this.storage.deleteKeys([keys.datasetManifest(tenant, id)]);
    await this.storage.deletePrefix(keys.dataset(tenant, id));
  }
}

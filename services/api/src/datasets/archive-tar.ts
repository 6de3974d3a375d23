import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import * as tarStream from 'tar-stream';
import { archivePathSegments } from './archive-path';
import {
  ByteMeter,
  checkEntryCount,
  collectEntryData,
  entryTooLarge,
  ratioExceeded,
  type ArchiveVisitor,
  type WalkOptions,
} from './archive-entry';
import { IngestError } from '@graft/layout';
import { RATIO_GRACE_BYTES } from './ingest-limits';

const CHUNK = 256 * 1024;

/**
 * Streams a tar or tar.gz file through tar-stream, one entry at a time, without touching the disk. Data the
 * visitor does not read is drained (and counted) before the next entry. For tar.gz, the bytes coming out of gunzip
 * are compared with the bytes going in as they flow, so a gzip bomb is stopped within one read chunk of crossing
 * the ratio. Every error and every early stop destroys the whole chain, which closes the file.
 */
export async function walkTar(file: string, gzip: boolean, opts: WalkOptions, visit: ArchiveVisitor): Promise<void> {
  const { limits, signal } = opts;
  signal?.throwIfAborted();
  const source = createReadStream(file, { highWaterMark: CHUNK });
  const gunzip = gzip ? createGunzip({ chunkSize: CHUNK }) : null;
  const extract = tarStream.extract();
  const meter = new ByteMeter(limits.maxTotalBytes);

  let sourceError: unknown = null;
  const fail = (err: unknown) => {
    if (!extract.destroyed) extract.destroy(err as Error);
  };
  source.on('error', (err) => {
    sourceError = err;
    fail(err);
  });
  if (gunzip) {
    let compressed = 0;
    let inflated = 0;
    source.on('data', (chunk) => {
      compressed += chunk.length;
    });
    gunzip.on('data', (chunk: Buffer) => {
      inflated += chunk.length;
      if (inflated > RATIO_GRACE_BYTES && inflated > compressed * limits.maxCompressionRatio) {
        fail(ratioExceeded('the gzip stream', inflated, compressed, limits.maxCompressionRatio));
        gunzip.destroy();
      }
    });
    gunzip.on('error', (err) => fail(new IngestError('INVALID_ARCHIVE', `not a readable gzip stream: ${err.message}`, {}, { cause: err })));
    source.pipe(gunzip).pipe(extract as unknown as NodeJS.WritableStream);
  } else {
    source.pipe(extract as unknown as NodeJS.WritableStream);
  }
  const onAbort = () => fail(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });

  try {
    let count = 0;
    for await (const entry of extract) {
      signal?.throwIfAborted();
      checkEntryCount(++count, limits);
      const header = entry.header;
      const rawPath = header.name;
      const segments = archivePathSegments(rawPath);
      const type = header.type as string | null;
      if (type === 'symlink' || type === 'link') {
        const what = type === 'symlink' ? 'a symbolic link' : 'a hard link';
        throw new IngestError('UNSAFE_PATH', `archive contains ${what}: '${rawPath}' -> '${header.linkname}'`, {
          path: rawPath,
        });
      }
      if (type !== 'file' && type !== 'contiguous-file' && type !== 'directory') {
        throw new IngestError('UNSAFE_PATH', `archive contains a special entry (${type ?? 'unknown type'}): '${rawPath}'`, {
          path: rawPath,
        });
      }
      const isDirectory = type === 'directory' || segments.length === 0;
      let used = false;
      await visit({
        rawPath,
        segments,
        kind: isDirectory ? 'directory' : 'file',
        declaredSize: header.size,
        unreadable: null,
        read: async () => {
          if (used) throw new Error(`'${rawPath}' was already read`);
          used = true;
          if (header.size > limits.maxEntryBytes) throw entryTooLarge(rawPath, header.size, limits.maxEntryBytes);
          return collectEntryData(entry as unknown as AsyncIterable<Uint8Array>, {
            path: rawPath,
            meter,
            maxBytes: limits.maxEntryBytes,
            maxRatio: limits.maxCompressionRatio,
            keep: true,
            signal,
          });
        },
      });
      if (!used) {
        await collectEntryData(entry as unknown as AsyncIterable<Uint8Array>, {
          path: rawPath,
          meter,
          maxBytes: Infinity,
          maxRatio: limits.maxCompressionRatio,
          keep: false,
          signal,
        });
      }
    }
  } catch (err) {
    if (err instanceof IngestError || err === sourceError || signal?.aborted) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new IngestError('INVALID_ARCHIVE', `not a readable tar archive: ${message}`, {}, { cause: err });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!extract.destroyed) extract.destroy();
    gunzip?.destroy();
    if (!source.closed) {
      const closed = new Promise<void>((resolve) => source.once('close', () => resolve()));
      source.destroy();
      await closed;
    }
  }
}

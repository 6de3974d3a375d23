import { IngestError } from '@graft/layout';
import { RATIO_GRACE_BYTES, type IngestLimits } from './ingest-limits';

/** One file or folder of an archive, as an archive walker hands it out. */
export interface ArchiveEntry {
  /** Path as stored in the archive. */
  rawPath: string;
  /** Safe, normalised segments of `rawPath` (see `archivePathSegments`). */
  segments: string[];
  kind: 'file' | 'directory';
  /** Uncompressed size that the archive's header claims; checked again while reading. */
  declaredSize: number;
  /** Why the data cannot be read (encrypted, unknown compression), or null. */
  unreadable: string | null;
  /**
   * Reads the whole entry into memory, counting the bytes actually inflated against the limits. Call at most once,
   * and before the visitor returns.
   */
  read(): Promise<Buffer>;
}

/** Called once per entry, in archive order; the walk waits for it. Throwing stops the walk. */
export type ArchiveVisitor = (entry: ArchiveEntry) => Promise<void>;

export interface WalkOptions {
  limits: IngestLimits;
  signal?: AbortSignal;
}

/**
 * Counts uncompressed bytes read out of one archive against `maxTotalBytes` and, where the archive's compressed
 * size is given, against `maxRatio` times that size: many small entries, each under the per-entry grace, cannot
 * add up to a bomb.
 */
export class ByteMeter {
  total = 0;
  constructor(
    private readonly maxTotalBytes: number,
    private readonly whole?: { compressedBytes: number; maxRatio: number },
  ) {}

  add(bytes: number, path: string): void {
    this.total += bytes;
    if (this.whole && this.total > RATIO_GRACE_BYTES && this.total > this.whole.compressedBytes * this.whole.maxRatio) {
      throw ratioExceeded('the archive', this.total, this.whole.compressedBytes, this.whole.maxRatio);
    }
    if (this.total > this.maxTotalBytes) {
      throw new IngestError(
        'ARCHIVE_TOO_LARGE',
        `archive holds more than ${this.maxTotalBytes} uncompressed bytes (stopped at '${path}')`,
        { path, limit: this.maxTotalBytes },
      );
    }
  }
}

export function checkEntryCount(count: number, limits: IngestLimits): void {
  if (count > limits.maxEntries) {
    throw new IngestError('TOO_MANY_ENTRIES', `archive has more than ${limits.maxEntries} entries`, {
      limit: limits.maxEntries,
    });
  }
}

export function entryTooLarge(path: string, size: number, limit: number): IngestError {
  return new IngestError('ENTRY_TOO_LARGE', `'${path}' is larger than the per-file limit of ${limit} bytes`, {
    path,
    limit,
    size,
  });
}

export function ratioExceeded(what: string, inflated: number, compressed: number, limit: number): IngestError {
  const ratio = compressed > 0 ? Math.round(inflated / compressed) : Infinity;
  return new IngestError(
    'COMPRESSION_RATIO_EXCEEDED',
    `${what} expands more than ${limit} times (${inflated} bytes from ${compressed}; ratio ${ratio})`,
    { limit, inflated, compressed },
  );
}

export interface CollectOptions {
  path: string;
  meter: ByteMeter;
  /** Bytes to keep at most; more throws ENTRY_TOO_LARGE. Infinity while draining. */
  maxBytes: number;
  /** Compressed size of this entry, when the ratio is judged per entry (zip). */
  compressedSize?: number;
  maxRatio: number;
  /** False to count and discard the data. */
  keep: boolean;
  signal?: AbortSignal;
}

/**
 * Reads a stream of entry data to its end, counting every byte. Throwing out of the loop destroys the stream, so a
 * limit stops the inflating at once rather than at the end of the entry.
 */
export async function collectEntryData(stream: AsyncIterable<Uint8Array>, opts: CollectOptions): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    opts.signal?.throwIfAborted();
    size += chunk.length;
    opts.meter.add(chunk.length, opts.path);
    if (size > opts.maxBytes) throw entryTooLarge(opts.path, size, opts.maxBytes);
    if (
      opts.compressedSize !== undefined &&
      size > RATIO_GRACE_BYTES &&
      size > opts.compressedSize * opts.maxRatio
    ) {
      throw ratioExceeded(`'${opts.path}'`, size, opts.compressedSize, opts.maxRatio);
    }
    if (opts.keep) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
  }
  return opts.keep ? Buffer.concat(chunks, size) : Buffer.alloc(0);
}

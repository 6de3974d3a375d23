export interface IngestLimits {
  /** Entries of any kind (files, folders, junk) in the archive. */
  maxEntries: number;
  /** Uncompressed bytes read out of the archive, counted as they are inflated. */
  maxTotalBytes: number;
  /** Uncompressed bytes of one file that is read into memory. */
  maxEntryBytes: number;
  /** Uncompressed / compressed bytes, per zip entry and over a whole archive (zip or tar.gz). */
  maxCompressionRatio: number;
  /** Width x height of one image. */
  maxImagePixels: number;
}

export const DEFAULT_INGEST_LIMITS: Readonly<IngestLimits> = Object.freeze({
  maxEntries: 100_000,
  maxTotalBytes: 4 * 1024 ** 3,
  maxEntryBytes: 50 * 1024 ** 2,
  maxCompressionRatio: 100,
  maxImagePixels: 40_000_000,
});

/**
 * Compression ratios are only judged once this many bytes have been inflated: tiny files (a solid-colour PNG,
 * tar padding) legitimately compress far better than any ratio limit, and cannot do harm.
 */
export const RATIO_GRACE_BYTES = 1024 * 1024;

export function resolveLimits(overrides: Partial<IngestLimits> | undefined): IngestLimits {
  const limits: IngestLimits = { ...DEFAULT_INGEST_LIMITS };
  for (const key of Object.keys(DEFAULT_INGEST_LIMITS) as (keyof IngestLimits)[]) {
    const value = overrides?.[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !(value > 0)) throw new RangeError(`ingest limit ${key} must be a positive number`);
    limits[key] = value;
  }
  return limits;
}

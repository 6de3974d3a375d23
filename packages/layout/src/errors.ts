// The errors of reading an upload.
import { statusOf, type ErrorCode } from '@graft/contract';
/** The codes an upload can fail with (the error catalogue in @graft/contract gives their statuses). */
export const INGEST_ERROR_CODES = [
  'INVALID_ARCHIVE',
  'UNSAFE_PATH',
  'ARCHIVE_TOO_LARGE',
  'ENTRY_TOO_LARGE',
  'TOO_MANY_ENTRIES',
  'COMPRESSION_RATIO_EXCEEDED',
  'INVALID_LAYOUT',
  'INVALID_CLASS_NAME',
  'NO_IMAGES',
  'TOO_FEW_CLASSES',
  'EMPTY_CLASS',
  'ABORTED',
  'STORAGE_FAILED',
  'INGEST_FAILED',
] as const satisfies readonly ErrorCode[];
export type IngestErrorCode = (typeof INGEST_ERROR_CODES)[number];

/** Key under which one accepted image was handed to `put`. */
export interface StoredImageKey {
  sha256: string;
  format: string;
}

export interface IngestErrorDetails {
  /** Path inside the archive that caused the failure, where there is one. */
  path?: string;
  /** The limit that was exceeded, where one was. */
  limit?: number;
  /**
   * Every key `put` was called with before the failure, whether or not that call resolved. `ingestArchive` settles
   * every `put` it started before it throws, so after the throw nothing more is written: deleting these keys
   * removes everything the failed ingest stored. Set by `ingestArchive` on every error it throws, as a
   * non-enumerable property, so that handing `details` to a response body does not list every stored key.
   */
  written?: StoredImageKey[];
  [key: string]: unknown;
}

/** An upload that cannot be ingested; `status` is the HTTP status to answer with. */
export class IngestError extends Error {
  readonly code: IngestErrorCode;
  readonly status: number;
  details?: IngestErrorDetails;

  constructor(code: IngestErrorCode, message: string, details?: IngestErrorDetails, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IngestError';
    this.code = code;
    this.status = statusOf(code);
    this.details = details;
  }
}

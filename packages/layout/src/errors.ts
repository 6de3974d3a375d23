/** Stable codes of every failure `ingestArchive` can report. */
export type IngestErrorCode =
  | 'INVALID_ARCHIVE'
  | 'UNSAFE_PATH'
  | 'ARCHIVE_TOO_LARGE'
  | 'ENTRY_TOO_LARGE'
  | 'TOO_MANY_ENTRIES'
  | 'COMPRESSION_RATIO_EXCEEDED'
  | 'INVALID_LAYOUT'
  | 'INVALID_CLASS_NAME'
  | 'NO_IMAGES'
  | 'SINGLE_CLASS'
  | 'EMPTY_CLASS'
  | 'ABORTED'
  | 'STORAGE_FAILED'
  | 'INGEST_FAILED';

/** HTTP status that each code maps to. 499: the client went away (abort); 500: our side failed. */
export const INGEST_ERROR_STATUS: Record<IngestErrorCode, 400 | 413 | 499 | 500> = {
  INVALID_ARCHIVE: 400,
  UNSAFE_PATH: 400,
  ARCHIVE_TOO_LARGE: 413,
  ENTRY_TOO_LARGE: 413,
  TOO_MANY_ENTRIES: 413,
  COMPRESSION_RATIO_EXCEEDED: 413,
  INVALID_LAYOUT: 400,
  INVALID_CLASS_NAME: 400,
  NO_IMAGES: 400,
  SINGLE_CLASS: 400,
  EMPTY_CLASS: 400,
  ABORTED: 499,
  STORAGE_FAILED: 500,
  INGEST_FAILED: 500,
};

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
  readonly status: 400 | 413 | 499 | 500;
  details?: IngestErrorDetails;

  constructor(code: IngestErrorCode, message: string, details?: IngestErrorDetails, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IngestError';
    this.code = code;
    this.status = INGEST_ERROR_STATUS[code];
    this.details = details;
  }
}

// The error catalogue: stable codes, each with its HTTP status. Every error body is
// {"error": {"code", "message", "details"?}}.
export const ERROR_CODES = {
  VALIDATION_FAILED: 400,
  INVALID_CONFIG: 400,
  INVALID_ARCHIVE: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNSAFE_PATH: 400,
  INVALID_LAYOUT: 400,
  INVALID_CLASS_NAME: 400,
  EMPTY_CLASS: 400,
  ENTRY_TOO_LARGE: 413,
  UPLOAD_ABORTED: 499,
  NO_IMAGES: 400,
  SINGLE_CLASS: 400,
  TOO_MANY_ENTRIES: 413,
  ARCHIVE_TOO_LARGE: 413,
  COMPRESSION_RATIO_EXCEEDED: 413,
  PAYLOAD_TOO_LARGE: 413,
  STORAGE_QUOTA_EXCEEDED: 413,
  INVALID_IMAGE: 400,
  IMAGE_TOO_LARGE: 413,
  TOO_MANY_IMAGES: 413,
  UNKNOWN_BACKBONE: 400,
  UNAUTHORIZED: 401,
  IMPORT_NOT_ALLOWED: 403,
  NOT_FOUND: 404,
  DATASET_NOT_FOUND: 404,
  JOB_NOT_FOUND: 404,
  MODEL_NOT_FOUND: 404,
  ARTIFACT_NOT_FOUND: 404,
  IMAGE_NOT_FOUND: 404,
  HEALTH_NOT_AVAILABLE: 404,
  BACKBONE_NOT_FOUND: 404,
  DATASET_IN_USE: 409,
  DATASET_NAME_TAKEN: 409,
  JOB_FINISHED: 409,
  JOB_NOT_SUCCEEDED: 409,
  LABEL_ISSUES_NOT_AVAILABLE: 409,
  RATE_LIMITED: 429,
  TENANT_QUOTA_EXCEEDED: 429,
  SERVICE_UNAVAILABLE: 503,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode | string,
    message: string,
    readonly details?: Record<string, unknown>,
    status?: number,
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status ?? (ERROR_CODES as Record<string, number>)[code] ?? 400;
  }

  toJSON() {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

export const notFound = (what: 'dataset' | 'job' | 'model' | 'backbone' | 'artifact', id: string) =>
  new ApiError(`${what.toUpperCase()}_NOT_FOUND`, `${what} '${id}' does not exist`, { id });

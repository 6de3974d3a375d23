// Errors the API answers with: a code of the catalogue (@graft/contract), whose status it takes, and a message.
// Every error body is {"error": {"code", "message", "details"?}}.
import { statusOf, type ErrorBody, type ErrorCode } from '@graft/contract';

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = statusOf(code);
  }

  toJSON(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

const NOT_FOUND = {
  dataset: 'DATASET_NOT_FOUND',
  job: 'JOB_NOT_FOUND',
  model: 'MODEL_NOT_FOUND',
  backbone: 'BACKBONE_NOT_FOUND',
  artifact: 'ARTIFACT_NOT_FOUND',
} as const satisfies Record<string, ErrorCode>;

export const notFound = (what: keyof typeof NOT_FOUND, id: string) => new ApiError(NOT_FOUND[what], `${what} '${id}' does not exist`, { id });

// Errors that callers tell apart by `code`. Every error class of the engine (here, in architectures/ and in
// @graft/inference) states `permanent`: whether retrying the same work fails the same way (a bad dataset, an
// impossible config, a corrupt weight file) or may succeed (a source that did not answer). The worker retries
// a job only where its error says it is not permanent. Codes and their meanings: the catalogue in @graft/contract.
import { ERRORS, type ErrorCode } from '@graft/contract';

/** What every error class of the engine carries. */
export interface EngineError extends Error {
  readonly code: ErrorCode;
  readonly permanent: boolean;
}

/** An error of the engine with a code of the catalogue; permanent as the catalogue says unless told otherwise. */
export class VisionError extends Error implements EngineError {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly permanent: boolean = ERRORS[code].permanent,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'VisionError';
  }
}

/** Whether an error says that retrying the same work fails the same way (false for errors that do not say). */
export function isPermanent(err: unknown): boolean {
  return (err as Partial<EngineError> | null)?.permanent === true;
}

/** Thrown when an AbortSignal stops training; `name` is 'AbortError' like DOM aborts. Not a failure of the work. */
export class AbortError extends Error implements EngineError {
  readonly code = 'ABORTED';
  readonly permanent = false;
  constructor(message = 'training was aborted') {
    super(message);
    this.name = 'AbortError';
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const reason = signal.reason;
    throw new AbortError(reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : undefined);
  }
}

/** An image that could not be decoded; `index` is its position in the list given, `key` its name where known. */
export class ImageDecodeError extends Error implements EngineError {
  readonly code = 'IMAGE_DECODE_FAILED';
  readonly permanent = true;
  constructor(
    readonly index: number,
    cause: unknown,
    readonly key?: string,
  ) {
    super(
      `image ${key !== undefined ? `'${key}'` : `#${index}`} is not a decodable JPEG, PNG or WebP image: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
    );
    this.name = 'ImageDecodeError';
  }
}

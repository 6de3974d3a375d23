// Errors that callers tell apart by `code`. `permanent` says whether retrying the same work can succeed:
// a bad dataset or an impossible config fails the same way every time.

export class VisionError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly permanent = true,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'VisionError';
  }
}

/** Thrown when an AbortSignal stops training; `name` is 'AbortError' like DOM aborts. */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
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
export class ImageDecodeError extends Error {
  readonly code = 'IMAGE_DECODE_FAILED';
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

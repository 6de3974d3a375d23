// Outages of the services Graft depends on (object storage, Redis): which errors are one, and how work waits
// through one. An outage is not the fault of the work that met it: it waits, with backoff, for the dependency to
// come back, for up to a tolerance (GRAFT_OUTAGE_TOLERANCE); only then does it fail, with an error that names the
// dependency and how long it was away.

export type Dependency = 'storage' | 'redis';

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EADDRNOTAVAIL',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);
// AWS SDK error names for a server that is there but cannot answer now.
const S3_UNAVAILABLE_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'ServiceUnavailable', 'SlowDown', 'InternalError']);
// ioredis and BullMQ messages for a connection that is down, and network codes quoted in a message.
const DOWN_MESSAGE = new RegExp(
  `Connection is closed|Stream isn't writeable|enableOfflineQueue|MaxRetriesPerRequest|Reached the max retries per request|socket hang up|\\b(${[...NETWORK_CODES].join('|')})\\b`,
  'i',
);

/**
 * Whether an error says that a dependency is unreachable or failing on its side (connection refused or reset,
 * timeouts, DNS failures, a 5xx from S3, a closed Redis connection), rather than that the request was wrong.
 * Looks through `cause` chains.
 */
export function isOutageError(err: unknown): boolean {
  for (let e: any = err, depth = 0; e && depth < 8; e = e.cause, depth++) {
    if (e instanceof DependencyUnavailableError) return true;
    if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true;
    if (typeof e.errno === 'string' && NETWORK_CODES.has(e.errno)) return true;
    if (typeof e.name === 'string' && S3_UNAVAILABLE_NAMES.has(e.name)) return true;
    const status = e.$metadata?.httpStatusCode;
    if (typeof status === 'number' && status >= 500) return true;
    if (typeof e.message === 'string' && DOWN_MESSAGE.test(e.message)) return true;
    if (Array.isArray(e.errors) && e.errors.some((x: unknown) => isOutageError(x))) return true;
  }
  return false;
}

/** `10 min 0 s`, `42 s`, `0.3 s`. */
export function formatDuration(ms: number): string {
  if (ms < 10_000) return `${Math.round(ms / 100) / 10} s`;
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** A dependency stayed unreachable for longer than the work would wait for it. Not worth retrying at once. */
export class DependencyUnavailableError extends Error {
  readonly code: 'STORAGE_UNAVAILABLE' | 'REDIS_UNAVAILABLE';
  readonly permanent = true;
  constructor(
    readonly dependency: Dependency,
    readonly downMs: number,
    cause: unknown,
  ) {
    const last = (cause as Error)?.message || (cause as any)?.code || (cause as any)?.name || String(cause);
    super(`${dependency === 'storage' ? 'object storage' : 'Redis'} was unreachable for ${formatDuration(downMs)}, longer than GRAFT_OUTAGE_TOLERANCE allows (last error: ${last})`, { cause });
    this.name = 'DependencyUnavailableError';
    this.code = dependency === 'storage' ? 'STORAGE_UNAVAILABLE' : 'REDIS_UNAVAILABLE';
  }
}

/** The DependencyUnavailableError in an error's `cause` chain, if any. */
export function findDependencyUnavailable(err: unknown): DependencyUnavailableError | null {
  for (let e: any = err, depth = 0; e && depth < 8; e = e.cause, depth++) {
    if (e instanceof DependencyUnavailableError) return e;
  }
  return null;
}

export interface OutagePolicy {
  dependency: Dependency;
  /** How long one operation keeps waiting for the dependency before it fails (0: it fails at once). */
  toleranceMs: number;
  /** Stops the wait: the operation rejects with the signal's reason. */
  signal?: AbortSignal;
  /** First and longest pause between tries (defaults 250 ms and 5 s). */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Told before each pause, with how long the dependency has been away. */
  onWaiting?(info: { dependency: Dependency; downMs: number; err: unknown }): void;
  /** Told when an operation succeeds after having waited. */
  onBack?(info: { dependency: Dependency; downMs: number }): void;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `op`; while it fails with an outage error, tries it again with exponential backoff until it succeeds or the
 * dependency has been away for `toleranceMs` (then rejects with DependencyUnavailableError). Any other error is
 * passed through at once. `op` must be safe to repeat.
 */
export async function throughOutage<T>(op: () => Promise<T>, policy: OutagePolicy): Promise<T> {
  const minDelay = policy.minDelayMs ?? 250;
  const maxDelay = Math.max(minDelay, policy.maxDelayMs ?? 5_000);
  let since: number | null = null;
  let delay = minDelay;
  for (;;) {
    if (policy.signal?.aborted) throw policy.signal.reason;
    try {
      const value = await op();
      if (since !== null) policy.onBack?.({ dependency: policy.dependency, downMs: Date.now() - since });
      return value;
    } catch (err) {
      if (!isOutageError(err) || policy.signal?.aborted) throw err;
      const now = Date.now();
      since ??= now;
      const downMs = now - since;
      if (downMs >= policy.toleranceMs) throw new DependencyUnavailableError(policy.dependency, downMs, err);
      policy.onWaiting?.({ dependency: policy.dependency, downMs, err });
      await sleep(Math.min(delay, policy.toleranceMs - downMs), policy.signal);
      delay = Math.min(delay * 2, maxDelay);
    }
  }
}

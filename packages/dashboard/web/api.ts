// The API client: every request carries the API key kept in localStorage, errors arrive as ApiError with the
// contract's code and message, and job events are read from a streamed fetch() so the key can be sent.
import { SseParser, type SseEvent } from './sse';
import { signal } from './signal';

const KEY_STORAGE = 'graft.apiKey';

function readKey(): string {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? '';
  } catch {
    return '';
  }
}

/** The API key in use ('' for none); components re-render when it changes. */
export const apiKey = signal(readKey());

/** Set when the API answers 401, so the page can ask for a key. */
export const needsKey = signal(false);

export function setApiKey(key: string): void {
  const k = key.trim();
  try {
    if (k) localStorage.setItem(KEY_STORAGE, k);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Private browsing may refuse storage; the key still holds for this page.
  }
  needsKey.set(false);
  apiKey.set(k);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function authHeaders(extra: Record<string, string> = {}): Record<string, string> {
  const key = apiKey.get();
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

async function failure(res: Response): Promise<ApiError> {
  let code = `HTTP_${res.status}`;
  let message = res.statusText || `the API answered ${res.status}`;
  let details: unknown;
  try {
    const body = await res.json();
    if (body?.error) ({ code, message, details } = body.error);
  } catch {
    // Not a JSON error body; keep the status line.
  }
  if (res.status === 401) needsKey.set(true);
  return new ApiError(res.status, code, message, details);
}

export async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(path, { ...init, headers: authHeaders((init.headers as Record<string, string>) ?? {}) });
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const get = <T>(path: string, signal?: AbortSignal) => request<T>(path, { signal });

export const postJson = <T>(path: string, body: unknown) =>
  request<T>(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

export const del = (path: string) => request<void>(path, { method: 'DELETE' });

/** POSTs an image (a dropped file, or one fetched with getBlob) as the raw body, typed as it is. */
export const postImage = <T>(path: string, image: Blob) =>
  request<T>(path, { method: 'POST', headers: { 'content-type': image.type }, body: image });

/** A binary response (an image) as a Blob typed by its content-type. */
export async function getBlob(path: string, signal?: AbortSignal): Promise<Blob> {
  const res = await fetch(path, { headers: authHeaders(), signal });
  if (!res.ok) throw await failure(res);
  return res.blob();
}

/**
 * Uploads a file as multipart/form-data with XMLHttpRequest, which reports upload progress (fetch does not).
 * `onProgress` receives the fraction sent, 0..1.
 */
export function upload<T>(path: string, form: FormData, onProgress: (fraction: number) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, 'NETWORK', 'the upload failed: the API could not be reached'));
    xhr.onload = () => {
      let body: any = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // leave null
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body as T);
      if (xhr.status === 401) needsKey.set(true);
      const e = body?.error;
      reject(new ApiError(xhr.status, e?.code ?? `HTTP_${xhr.status}`, e?.message ?? `the API answered ${xhr.status}`, e?.details));
    };
    xhr.send(form);
  });
}

/**
 * Reads a Server-Sent Events stream with fetch() so that the Authorization header is sent. Calls `onEvent`
 * for each event; resolves when the server ends the stream, rejects on a failed request or a network error.
 * Abort with `signal`.
 */
export async function streamEvents(path: string, onEvent: (e: SseEvent) => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(path, { headers: authHeaders({ accept: 'text/event-stream' }), signal, cache: 'no-store' });
  if (!res.ok) throw await failure(res);
  if (!res.body) throw new ApiError(0, 'NO_STREAM', 'the browser gave no response stream');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const e of parser.push(value)) onEvent(e);
    }
  } finally {
    reader.releaseLock();
  }
}

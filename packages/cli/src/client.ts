// The Graft HTTP API over the global fetch: one class, one method per endpoint the CLI uses, API errors as ApiError.
// The shapes are the contract's (@graft/contract).
import { Readable } from 'node:stream';
import {
  TERMINAL_STATES,
  type Artifact,
  type CancelResponse,
  type ClassMetrics,
  type DatasetManifest,
  type EvalMetrics,
  type HealthReport,
  type HistoryRow,
  type Job,
  type JobPage,
  type JobState,
  type LabelIssues,
  type ModelRecord,
  type OodResult,
  type Prediction,
  type PredictResponse,
} from '@graft/contract';

/** An error answered by the API ({"error": {code, message, details}}), or a failure to reach it. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** HTTP status; 0 when the service could not be reached. */
    readonly status: number,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export type Dataset = DatasetManifest;
export type DatasetHealth = HealthReport;
export type Model = ModelRecord;
export type OutOfDistribution = OodResult;
export { TERMINAL_STATES, type Artifact, type ClassMetrics, type EvalMetrics, type HistoryRow, type Job, type JobState, type LabelIssues, type Prediction, type PredictResponse };

export interface PredictOptions {
  topK?: number;
  /** 'flip': average each prediction with that of the image mirrored left to right. */
  tta?: 'flip';
  /** Flag images whose out-of-distribution score is above this, instead of the model's threshold. */
  oodThreshold?: number;
}

/** Grad-CAM of one image for one class; `overlay` is a PNG data URL. */
export interface Explanation {
  modelId: string;
  label: string;
  probability: number;
  heatmap: { width: number; height: number; values: number[] };
  overlay: string;
}

export interface JobEventMessage {
  event: 'progress' | 'epoch' | 'state' | string;
  data: any;
}

export interface ImageFile {
  name: string;
  data: Uint8Array;
  type: string;
}

export interface RequestOptions {
  query?: Record<string, string | number | undefined>;
  json?: unknown;
  body?: BodyInit | Readable;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface ClientOptions {
  url: string;
  key?: string;
}

export class GraftClient {
  readonly url: string;
  private readonly key: string | undefined;

  constructor(opts: ClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.key = opts.key || undefined;
  }

  /** A request; answers the Response when it is 2xx, throws ApiError otherwise. */
  async raw(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const url = new URL(this.url + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { ...opts.headers };
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    let body: BodyInit | undefined;
    let duplex: 'half' | undefined;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.body instanceof Readable) {
      body = Readable.toWeb(opts.body) as unknown as BodyInit;
      duplex = 'half';
    } else {
      body = opts.body;
    }
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body, signal: opts.signal, ...(duplex ? { duplex } : {}) } as RequestInit);
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new ApiError('CONNECTION_FAILED', `cannot reach ${this.url} (${why}); is the service running? Set GRAFT_URL or --url`, 0);
    }
    if (!res.ok) throw await toApiError(res);
    return res;
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.raw(method, path, opts);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  // --- datasets ---------------------------------------------------------------------------------------------------

  listDatasets() {
    return this.request<{ items: Dataset[]; total: number }>('GET', '/v1/datasets');
  }

  getDataset(id: string) {
    return this.request<Dataset>('GET', `/v1/datasets/${enc(id)}`);
  }

  datasetHealth(id: string) {
    return this.request<DatasetHealth>('GET', `/v1/datasets/${enc(id)}/health`);
  }

  deleteDataset(id: string) {
    return this.request<void>('DELETE', `/v1/datasets/${enc(id)}`);
  }

  /** Uploads an archive as a raw body; `size` becomes Content-Length where known. */
  uploadDataset(body: Readable, opts: { contentType: string; size?: number; name?: string }) {
    const headers: Record<string, string> = { 'content-type': opts.contentType };
    if (opts.size !== undefined && opts.size >= 0) headers['content-length'] = String(opts.size);
    return this.request<Dataset>('POST', '/v1/datasets', { body, headers, query: { name: opts.name } });
  }

  // --- jobs -------------------------------------------------------------------------------------------------------

  createJob(datasetId: string, config?: Record<string, unknown>) {
    return this.request<Job>('POST', '/v1/jobs', { json: config ? { datasetId, config } : { datasetId } });
  }

  listJobs(q: { state?: string; limit?: number; offset?: number } = {}) {
    return this.request<JobPage>('GET', '/v1/jobs', { query: q });
  }

  getJob(id: string) {
    return this.request<Job>('GET', `/v1/jobs/${enc(id)}`);
  }

  labelIssues(id: string, q: { limit?: number; split?: string } = {}) {
    return this.request<LabelIssues>('GET', `/v1/jobs/${enc(id)}/label-issues`, { query: q });
  }

  cancelJob(id: string) {
    return this.request<CancelResponse>('POST', `/v1/jobs/${enc(id)}/cancel`);
  }

  /** The job's Server-Sent Events until the server ends the stream (after a terminal state) or `signal` aborts. */
  async *events(id: string, signal?: AbortSignal): AsyncGenerator<JobEventMessage> {
    const res = await this.raw('GET', `/v1/jobs/${enc(id)}/events`, { headers: { accept: 'text/event-stream' }, signal });
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event = value;
          else if (field === 'data') data.push(value);
        }
        if (!data.length) continue;
        const text = data.join('\n');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: handed on as text
        }
        yield { event, data: parsed };
      }
    }
  }

  // --- models -----------------------------------------------------------------------------------------------------

  listModels() {
    return this.request<{ items: Model[]; total: number }>('GET', '/v1/models');
  }

  getModel(id: string) {
    return this.request<Model>('GET', `/v1/models/${enc(id)}`);
  }

  deleteModel(id: string) {
    return this.request<void>('DELETE', `/v1/models/${enc(id)}`);
  }

  listArtifacts(id: string) {
    return this.request<{ items: Artifact[] }>('GET', `/v1/models/${enc(id)}/artifacts`);
  }

  /** One artifact as a byte stream. */
  async artifact(id: string, file: string): Promise<{ body: Readable; bytes: number | null }> {
    const res = await this.raw('GET', `/v1/models/${enc(id)}/artifacts/${enc(file)}`);
    const len = res.headers.get('content-length');
    const body = res.body ? Readable.fromWeb(res.body as any) : Readable.from([]);
    return { body, bytes: len === null ? null : Number(len) };
  }

  /** Classifies images sent as one multipart request; one result per image, in order. */
  predict(id: string, images: ImageFile[], opts: PredictOptions = {}) {
    const query = { topK: opts.topK, tta: opts.tta, oodThreshold: opts.oodThreshold };
    return this.request<PredictResponse>('POST', `/v1/models/${enc(id)}/predict`, { body: imageForm(images), query });
  }

  /** Where the model looks for `label` (default: its top class) in one image. */
  explain(id: string, image: ImageFile, label?: string) {
    return this.request<Explanation>('POST', `/v1/models/${enc(id)}/explain`, { body: imageForm([image]), query: { label } });
  }
}

const enc = encodeURIComponent;

/** Images as multipart/form-data file fields named 'image', as /predict and /explain take them. */
function imageForm(images: ImageFile[]): FormData {
  const form = new FormData();
  for (const img of images) form.append('image', new Blob([img.data as BlobPart], { type: img.type }), img.name);
  return form;
}

async function toApiError(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; details?: Record<string, unknown> } };
    if (body.error?.code) return new ApiError(body.error.code, body.error.message ?? res.statusText, res.status, body.error.details);
  } catch {
    // not a JSON error body
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiError(`HTTP_${res.status}`, `${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''}`, res.status);
}

// Environment configuration, parsed once at start. Every bad variable is listed in one error.
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { FROZEN_ENGINES, FROZEN_PRECISIONS, frozenEngineNamed, type FrozenPrecision, SYNC_READS, TF_BACKENDS, tfBackendNamed, type FrozenEngineSetting, type SyncReads, type TfBackend } from './engines';
import { envReader, type EnvReader } from './reader';
import type { Env } from './variables';

export interface GraftConfig {
  host: string;
  port: number;
  dataDir: string;
  redisUrl: string;
  /** Whether REDIS_URL was given explicitly (npm start only embeds a redis-server when it was not). */
  redisUrlExplicit: boolean;
  queuePrefix: string;
  s3: {
    endpoint: string | null;
    bucket: string;
    region: string;
    accessKeyId: string;
    secretAccessKey: string;
    forcePathStyle: boolean;
  };
  backbones: string;
  apiKeys: { tenant: string; key: string }[];
  workerConcurrency: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** How far the JavaScript heap grows past what a full collection kept, in percent (heap.ts); 0: V8 chooses. */
  heapGrowthPercent: number;
  limits: {
    uploadBytes: number;
    archiveEntries: number;
    uncompressedBytes: number;
    entryBytes: number;
    compressionRatio: number;
    imagePixels: number;
    predictImages: number;
    predictBodyBytes: number;
    /** Decoded pixels of all the images of one /predict request together. */
    predictPixels: number;
    /** Pixels being decoded for /predict at once in one API process; past it, requests wait, tenants in turn. */
    predictDecodePixels: number;
    /** JSON request bodies other than /predict's. */
    jsonBodyBytes: number;
    /** Nesting of arrays and objects in a JSON body. */
    jsonDepth: number;
    rateLimitPerMinute: number;
    /** Requests with a wrong or missing API key, per client address and minute, counted across API processes. */
    authFailuresPerMinute: number;
    /** /predict and /explain requests of one tenant in flight at once, per API process. */
    tenantPredicts: number;
    /** /predict and /explain requests of one tenant that wait for one of those slots, per API process; past them, 429. */
    tenantPredictQueue: number;
    /** Dataset uploads and imports of one tenant in flight at once, per API process. */
    tenantIngests: number;
    /** Bytes of all the datasets of one tenant. */
    tenantStorageBytes: number;
    /** Job event streams (SSE) of one tenant open at once, per API process. */
    tenantStreams: number;
  };
  /** Socket timeouts of the API's HTTP server. */
  http: {
    /** Receiving the request line and headers. */
    headersTimeoutMs: number;
    /** Receiving a whole request, body included. */
    requestTimeoutMs: number;
    /**
     * Proxies whose X-Forwarded-For gives the client address (rate limits count per address): false, a number
     * of hops, or addresses and CIDR ranges.
     */
    trustProxy: false | number | string[];
  };
  /** What one training job may cost, and what one tenant may have in the queue. */
  jobs: {
    /** Estimated peak memory of a training process for the job's config and dataset. */
    maxMemoryBytes: number;
    /** Wall-clock limit of one job (estimated before it is accepted; enforced while it runs). */
    maxSeconds: number;
    /** Queued plus running jobs of one tenant. */
    tenantQueued: number;
    /** Running jobs of one tenant at once, over all workers. */
    tenantConcurrency: number;
    /** Job records kept per tenant; the oldest finished ones go first. */
    tenantRecords: number;
  };
  /** Where POST /v1/datasets/import may read: per tenant ('*' = every tenant), s3://bucket/prefix locations. */
  importSources: { tenant: string; bucket: string; prefix: string }[];
  predict: {
    maxBatch: number;
    maxWaitMs: number;
    cacheBytes: number;
    /** What runs /predict: ONNX Runtime with TF.js as the fallback ('auto'), or one of them alone. */
    engine: 'auto' | 'onnx' | 'tfjs';
    /** ONNX Runtime worker threads that run /predict's batches, one batch each at a time. */
    workers: number;
    /** ONNX Runtime intra-op threads of each worker's session; null: the cores divided among the workers. */
    threads: number | null;
  };
  /**
   * int8 models (GRAFT_INT8): training quantizes each model it exports to ONNX and keeps model.int8.onnx where it
   * agrees with fp32 on the validation images; /predict serves it where there is one.
   */
  int8: {
    enabled: boolean;
    /** Training images the activation ranges are calibrated on. */
    calibrationImages: number;
    /** Most validation images int8 is checked against fp32 on. */
    validationImages: number;
  };
  jobAttempts: number;
  /** How long a worker's lock on a job lasts without renewal; a crashed worker's job is taken over after it. */
  jobLockMs: number;
  /**
   * How long a job's work waits for object storage or Redis to come back before the job fails
   * (GRAFT_OUTAGE_TOLERANCE). An outage spends none of the job's attempts.
   */
  outageToleranceMs: number;
  /** Port of the worker's Prometheus metrics (0: none). */
  workerMetricsPort: number;
  /** How the training process (and the API's TensorFlow.js paths) run. */
  training: {
    /** The TensorFlow.js backend to use; null: the best one that loads. */
    tfBackend: TfBackend | null;
    /** What runs the frozen part of a network during training. */
    frozenEngine: FrozenEngineSetting;
    /** What computes the gradients of the head and fine-tuning steps on CPU backends (same names as frozenEngine). */
    trainEngine: FrozenEngineSetting;
    /** 'int8' (default): the frozen part calibrates int8 on its first inputs and runs in int8 where it stays close to fp32. */
    frozenPrecision: FrozenPrecision;
    /** Threads sharing a training step on single-threaded backends (at most the cores are used). */
    threads: number;
  };
  /** Port of the embedded S3-protocol server that `npm start` runs where S3_ENDPOINT is unset (0: a free one). */
  embeddedS3Port: number;
  /** Switches for the test suite only. */
  testing: {
    /** Synchronous tensor reads allowed, or made to throw so that no path comes to need one. */
    syncReads: SyncReads;
  };
}

export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** The public hosting of the TensorFlow.js MobileNet weights (`<base>/<name>/model.json`). */
export const DEFAULT_BACKBONES_URL = 'https://storage.googleapis.com/tfjs-models/tfjs';

/**
 * Where backbone weights are read from by default: a `shared/models` folder beside the checkout where a team
 * keeps its copy of the weights, else the public hosting.
 */
function defaultBackbones(): string {
  const local = path.resolve('..', 'shared', 'models');
  return fs.existsSync(local) ? local : DEFAULT_BACKBONES_URL;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const PREDICT_ENGINES = ['auto', 'onnx', 'tfjs'] as const;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Every variable parsed and checked; a ConfigError lists every bad one, each by name. */
export function loadConfig(env: Env = process.env): GraftConfig {
  const problems: string[] = [];
  const r = envReader(env, problems);
  const config: GraftConfig = {
    host: r.str('HOST', '127.0.0.1'),
    port: r.int('PORT', 8080, 0, 65535),
    dataDir: path.resolve(r.str('GRAFT_DATA_DIR', './.graft')),
    redisUrl: r.url('REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:'])!,
    redisUrlExplicit: r.raw('REDIS_URL') !== undefined,
    queuePrefix: queuePrefix(r),
    s3: s3(r),
    backbones: backbones(r),
    apiKeys: apiKeys(r),
    workerConcurrency: r.int('WORKER_CONCURRENCY', 1, 1, 64),
    logLevel: r.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    heapGrowthPercent: r.int('GRAFT_HEAP_GROWTH_PERCENT', 100, 0, 1000),
    limits: limits(r),
    http: {
      headersTimeoutMs: r.int('GRAFT_HEADERS_TIMEOUT_MS', 15_000, 100, 600_000),
      requestTimeoutMs: r.int('GRAFT_REQUEST_TIMEOUT_MS', 300_000, 100, 24 * 3600_000),
      trustProxy: trustProxy(r),
    },
    jobs: {
      maxMemoryBytes: r.int('GRAFT_MAX_JOB_MEMORY_BYTES', 8 * 1024 ** 3, 64 * 1024 ** 2),
      maxSeconds: r.int('GRAFT_MAX_JOB_SECONDS', 6 * 3600, 10, 30 * 24 * 3600),
      tenantQueued: r.int('GRAFT_MAX_TENANT_JOBS', 20, 1, 100_000),
      tenantConcurrency: r.int('GRAFT_TENANT_CONCURRENCY', 1, 1, 1000),
      tenantRecords: r.int('GRAFT_MAX_TENANT_JOB_RECORDS', 1000, 1, 1_000_000),
    },
    importSources: importSources(r),
    predict: {
      maxBatch: r.int('GRAFT_PREDICT_MAX_BATCH', 16, 1, 1024),
      maxWaitMs: r.int('GRAFT_PREDICT_MAX_WAIT_MS', 3, 0, 1000),
      cacheBytes: r.int('GRAFT_MODEL_CACHE_BYTES', 1024 ** 3, 1024 ** 2),
      engine: r.oneOf('GRAFT_PREDICT_ENGINE', 'auto', PREDICT_ENGINES),
      workers: r.int('GRAFT_PREDICT_WORKERS', 1, 1, 256),
      threads: r.raw('GRAFT_PREDICT_THREADS') === undefined ? null : r.int('GRAFT_PREDICT_THREADS', 1, 1, 1024),
    },
    int8: {
      enabled: r.bool('GRAFT_INT8', true),
      calibrationImages: r.int('GRAFT_INT8_CALIBRATION_IMAGES', 32, 8, 10_000),
      validationImages: r.int('GRAFT_INT8_VALIDATION_IMAGES', 2_000, 10, 1_000_000),
    },
    jobAttempts: r.int('GRAFT_JOB_ATTEMPTS', 3, 1, 100),
    jobLockMs: r.int('GRAFT_JOB_LOCK_MS', 30_000, 1_000, 600_000),
    outageToleranceMs: r.duration('GRAFT_OUTAGE_TOLERANCE', 10 * 60_000, 24 * 3_600_000),
    workerMetricsPort: r.int('GRAFT_WORKER_METRICS_PORT', 9464, 0, 65535),
    training: {
      tfBackend: r.raw('GRAFT_TF_BACKEND') === undefined ? null : r.oneOf('GRAFT_TF_BACKEND', 'cpu', TF_BACKENDS, tfBackendNamed),
      frozenEngine: r.oneOf('GRAFT_FROZEN_ENGINE', 'auto', FROZEN_ENGINES, frozenEngineNamed),
      trainEngine: r.oneOf('GRAFT_TRAIN_ENGINE', 'auto', FROZEN_ENGINES, frozenEngineNamed),
      frozenPrecision: r.oneOf('GRAFT_FROZEN_PRECISION', 'int8', FROZEN_PRECISIONS),
      threads: r.int('GRAFT_TRAIN_THREADS', 1, 1, 1024),
    },
    embeddedS3Port: r.int('GRAFT_S3_PORT', 0, 0, 65535),
    testing: { syncReads: r.oneOf('GRAFT_TF_SYNC_READS', 'allow', SYNC_READS) },
  };
  if (config.http.headersTimeoutMs > config.http.requestTimeoutMs) {
    problems.push('GRAFT_HEADERS_TIMEOUT_MS must not be more than GRAFT_REQUEST_TIMEOUT_MS');
  }
  if (problems.length) throw new ConfigError(problems);
  return config;
}

function queuePrefix(r: EnvReader): string {
  const prefix = r.str('GRAFT_QUEUE_PREFIX', 'graft');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(prefix)) r.problem(`GRAFT_QUEUE_PREFIX=${JSON.stringify(prefix)}: letters, digits, _ and - only`);
  return prefix;
}

function s3(r: EnvReader): GraftConfig['s3'] {
  const bucket = r.str('S3_BUCKET', 'graft');
  if (!BUCKET.test(bucket)) {
    r.problem(`S3_BUCKET=${JSON.stringify(bucket)}: not a valid bucket name (3-63 lowercase letters, digits, . and -)`);
  }
  return {
    endpoint: r.url('S3_ENDPOINT', null, ['http:', 'https:']),
    bucket,
    region: r.str('S3_REGION', 'us-east-1'),
    accessKeyId: r.str('AWS_ACCESS_KEY_ID', 'S3RVER'),
    secretAccessKey: r.str('AWS_SECRET_ACCESS_KEY', 'S3RVER'),
    forcePathStyle: r.bool('S3_FORCE_PATH_STYLE', true),
  };
}

/** A folder (made absolute), an http(s):// URL base or an s3://bucket/prefix, without a trailing slash. */
function backbones(r: EnvReader): string {
  const raw = r.str('GRAFT_BACKBONES', defaultBackbones());
  if (raw.startsWith('s3://') && !/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(raw)) {
    r.problem(`GRAFT_BACKBONES=${JSON.stringify(raw)}: expected s3://bucket/prefix with a valid bucket name`);
  }
  if (/^https?:\/\//.test(raw) || raw.startsWith('s3://')) return raw.replace(/\/+$/, '');
  return path.resolve(raw.replace(/^file:\/\//, ''));
}

/** `tenant:key,…`; a bad entry is named without its key. */
function apiKeys(r: EnvReader): GraftConfig['apiKeys'] {
  const keys: GraftConfig['apiKeys'] = [];
  for (const item of r.str('GRAFT_API_KEYS', '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const i = item.indexOf(':');
    const tenant = item.slice(0, i);
    const key = item.slice(i + 1);
    if (i <= 0 || !/^[A-Za-z0-9_.-]{1,64}$/.test(tenant) || key.length < 8) {
      r.problem(
        `GRAFT_API_KEYS: entry ${JSON.stringify(item.replace(/:.*/, ':…'))} must be tenant:key, tenant of letters, digits, . _ -, key at least 8 characters`,
      );
      continue;
    }
    if (keys.some((k) => k.key === key)) r.problem(`GRAFT_API_KEYS: a key is given twice (tenant ${tenant})`);
    keys.push({ tenant, key });
  }
  return keys;
}

/** `tenant=s3://bucket/prefix/,…`, tenant `*` for every tenant. */
function importSources(r: EnvReader): GraftConfig['importSources'] {
  const sources: GraftConfig['importSources'] = [];
  for (const item of r.str('GRAFT_IMPORT_SOURCES', '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9_.-]{1,64}|\*)=s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(item);
    if (!m) {
      r.problem(`GRAFT_IMPORT_SOURCES: entry ${JSON.stringify(item)} must be tenant=s3://bucket/prefix/ (tenant or *)`);
      continue;
    }
    const prefix = m[3] ?? '';
    sources.push({ tenant: m[1]!, bucket: m[2]!, prefix: prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/` });
  }
  return sources;
}

/** Off, a number of hops, or a list of addresses and CIDR ranges. */
function trustProxy(r: EnvReader): GraftConfig['http']['trustProxy'] {
  const raw = r.str('GRAFT_TRUST_PROXY', '');
  if (/^\d{1,2}$/.test(raw)) return Number(raw) || false;
  if (!raw || /^(false|no|off)$/i.test(raw)) return false;
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((a) => !/^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(a));
  if (!bad.length) return list;
  r.problem(`GRAFT_TRUST_PROXY: ${JSON.stringify(bad.join(','))} is not a number of hops or a list of addresses / CIDR ranges`);
  return false;
}

function limits(r: EnvReader): GraftConfig['limits'] {
  return {
    uploadBytes: r.int('GRAFT_MAX_UPLOAD_BYTES', 2 * 1024 ** 3, 1024),
    archiveEntries: r.int('GRAFT_MAX_ARCHIVE_ENTRIES', 100_000, 1),
    uncompressedBytes: r.int('GRAFT_MAX_UNCOMPRESSED_BYTES', 8 * 1024 ** 3, 1024),
    entryBytes: r.int('GRAFT_MAX_ENTRY_BYTES', 50 * 1024 ** 2, 1024),
    compressionRatio: r.int('GRAFT_MAX_COMPRESSION_RATIO', 100, 1),
    imagePixels: r.int('GRAFT_MAX_IMAGE_PIXELS', 40_000_000, 1),
    predictImages: r.int('GRAFT_MAX_PREDICT_IMAGES', 64, 1, 10_000),
    predictBodyBytes: r.int('GRAFT_MAX_PREDICT_BYTES', 32 * 1024 ** 2, 1024),
    predictPixels: r.int('GRAFT_MAX_PREDICT_PIXELS', 160_000_000, 1),
    predictDecodePixels: r.int('GRAFT_PREDICT_DECODE_PIXELS', 320_000_000, 1),
    jsonBodyBytes: r.int('GRAFT_MAX_JSON_BYTES', 1024 ** 2, 1024),
    jsonDepth: r.int('GRAFT_MAX_JSON_DEPTH', 32, 2, 1000),
    rateLimitPerMinute: r.int('GRAFT_RATE_LIMIT', 60_000, 0),
    authFailuresPerMinute: r.int('GRAFT_AUTH_FAILURE_LIMIT', 30, 0),
    tenantPredicts: r.int('GRAFT_TENANT_PREDICTS', 16, 1, 10_000),
    tenantPredictQueue: r.int('GRAFT_TENANT_PREDICT_QUEUE', 64, 0, 100_000),
    tenantIngests: r.int('GRAFT_TENANT_INGESTS', 2, 1, 1_000),
    tenantStorageBytes: r.int('GRAFT_MAX_TENANT_STORAGE_BYTES', 20 * 1024 ** 3, 1024),
    tenantStreams: r.int('GRAFT_TENANT_STREAMS', 32, 1, 100_000),
  };
}

export const cpuCount = () => os.availableParallelism?.() ?? os.cpus().length;
export * from './logger';
export * from './engines';
export { ENV_VARIABLES, TEST_ONLY_VARIABLES, type EnvName } from './variables';

/** For a process's entry point: the configuration, or every problem printed and exit code 2. */
export function loadConfigOrExit(env: Env = process.env): GraftConfig {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
}

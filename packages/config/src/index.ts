// Environment configuration, parsed once at start. Every bad variable is listed in one error.
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';

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
    /** /predict requests of one tenant in flight at once, per API process. */
    tenantPredicts: number;
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

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): GraftConfig {
  const problems: string[] = [];
  const str = (name: string, def: string) => {
    const v = env[name];
    return v === undefined || v === '' ? def : v;
  };
  const int = (name: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return def;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected an integer from ${min} to ${max}`);
      return def;
    }
    return n;
  };
  const bool = (name: string, def: boolean) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return def;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    problems.push(`${name}=${JSON.stringify(raw)}: expected true or false`);
    return def;
  };
  const url = (name: string, def: string | null, protocols: string[]) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return def;
    try {
      const u = new URL(raw);
      if (!protocols.includes(u.protocol)) throw new Error();
      return raw.replace(/\/+$/, '');
    } catch {
      problems.push(`${name}=${JSON.stringify(raw)}: expected a URL starting with ${protocols.join(' or ')}//`);
      return def;
    }
  };

  /** A duration: `90` (seconds), `500ms`, `45s`, `10m`, `1h`. */
  const duration = (name: string, defMs: number, maxMs: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return defMs;
    const m = /^\s*(\d+)\s*(ms|s|m|min|h)?\s*$/.exec(raw);
    const unit = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 }[(m?.[2] ?? 's') as 'ms'];
    const ms = m ? Number(m[1]) * unit : NaN;
    if (!(ms <= maxMs)) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected a duration such as 600, 90s, 10m or 1h, at most ${maxMs / 3_600_000} h`);
      return defMs;
    }
    return ms;
  };

  const apiKeys: GraftConfig['apiKeys'] = [];
  for (const item of str('GRAFT_API_KEYS', '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const i = item.indexOf(':');
    const tenant = item.slice(0, i);
    const key = item.slice(i + 1);
    if (i <= 0 || !/^[A-Za-z0-9_.-]{1,64}$/.test(tenant) || key.length < 8) {
      problems.push(
        `GRAFT_API_KEYS: entry ${JSON.stringify(item.replace(/:.*/, ':…'))} must be tenant:key, tenant of letters, digits, . _ -, key at least 8 characters`,
      );
      continue;
    }
    if (apiKeys.some((k) => k.key === key)) problems.push(`GRAFT_API_KEYS: a key is given twice (tenant ${tenant})`);
    apiKeys.push({ tenant, key });
  }

  const importSources: GraftConfig['importSources'] = [];
  for (const item of str('GRAFT_IMPORT_SOURCES', '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9_.-]{1,64}|\*)=s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(item);
    if (!m) {
      problems.push(`GRAFT_IMPORT_SOURCES: entry ${JSON.stringify(item)} must be tenant=s3://bucket/prefix/ (tenant or *)`);
      continue;
    }
    const prefix = m[3] ?? '';
    importSources.push({ tenant: m[1]!, bucket: m[2]!, prefix: prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/` });
  }

  const trustProxyRaw = str('GRAFT_TRUST_PROXY', '');
  let trustProxy: GraftConfig['http']['trustProxy'] = false;
  if (/^\d{1,2}$/.test(trustProxyRaw)) trustProxy = Number(trustProxyRaw) || false;
  else if (trustProxyRaw && !/^(false|no|off)$/i.test(trustProxyRaw)) {
    const list = trustProxyRaw.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = list.filter((a) => !/^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(a));
    if (bad.length) problems.push(`GRAFT_TRUST_PROXY: ${JSON.stringify(bad.join(','))} is not a number of hops or a list of addresses / CIDR ranges`);
    else trustProxy = list;
  }

  const logLevel = str('LOG_LEVEL', 'info');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`LOG_LEVEL=${JSON.stringify(logLevel)}: expected one of ${LOG_LEVELS.join(', ')}`);
  }
  const predictEngine = str('GRAFT_PREDICT_ENGINE', 'auto');
  if (!(PREDICT_ENGINES as readonly string[]).includes(predictEngine)) {
    problems.push(`GRAFT_PREDICT_ENGINE=${JSON.stringify(predictEngine)}: expected one of ${PREDICT_ENGINES.join(', ')}`);
  }
  const bucket = str('S3_BUCKET', 'graft');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    problems.push(`S3_BUCKET=${JSON.stringify(bucket)}: not a valid bucket name (3-63 lowercase letters, digits, . and -)`);
  }
  const queuePrefix = str('GRAFT_QUEUE_PREFIX', 'graft');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(queuePrefix)) {
    problems.push(`GRAFT_QUEUE_PREFIX=${JSON.stringify(queuePrefix)}: letters, digits, _ and - only`);
  }
  const backbonesRaw = str('GRAFT_BACKBONES', defaultBackbones());
  let backbones = backbonesRaw;
  if (backbonesRaw.startsWith('s3://') && !/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(backbonesRaw)) {
    problems.push(`GRAFT_BACKBONES=${JSON.stringify(backbonesRaw)}: expected s3://bucket/prefix with a valid bucket name`);
  }
  if (/^https?:\/\//.test(backbonesRaw) || backbonesRaw.startsWith('s3://')) {
    backbones = backbonesRaw.replace(/\/+$/, '');
  } else {
    backbones = path.resolve(backbonesRaw.replace(/^file:\/\//, ''));
  }

  const config: GraftConfig = {
    host: str('HOST', '127.0.0.1'),
    port: int('PORT', 8080, 0, 65535),
    dataDir: path.resolve(str('GRAFT_DATA_DIR', './.graft')),
    redisUrl: url('REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:'])!,
    redisUrlExplicit: !!env.REDIS_URL,
    queuePrefix,
    s3: {
      endpoint: url('S3_ENDPOINT', null, ['http:', 'https:']),
      bucket,
      region: str('S3_REGION', 'us-east-1'),
      accessKeyId: str('AWS_ACCESS_KEY_ID', 'S3RVER'),
      secretAccessKey: str('AWS_SECRET_ACCESS_KEY', 'S3RVER'),
      forcePathStyle: bool('S3_FORCE_PATH_STYLE', true),
    },
    backbones,
    apiKeys,
    workerConcurrency: int('WORKER_CONCURRENCY', 1, 1, 64),
    logLevel: logLevel as GraftConfig['logLevel'],
    limits: {
      uploadBytes: int('GRAFT_MAX_UPLOAD_BYTES', 2 * 1024 ** 3, 1024),
      archiveEntries: int('GRAFT_MAX_ARCHIVE_ENTRIES', 100_000, 1),
      uncompressedBytes: int('GRAFT_MAX_UNCOMPRESSED_BYTES', 8 * 1024 ** 3, 1024),
      entryBytes: int('GRAFT_MAX_ENTRY_BYTES', 50 * 1024 ** 2, 1024),
      compressionRatio: int('GRAFT_MAX_COMPRESSION_RATIO', 100, 1),
      imagePixels: int('GRAFT_MAX_IMAGE_PIXELS', 40_000_000, 1),
      predictImages: int('GRAFT_MAX_PREDICT_IMAGES', 64, 1, 10_000),
      predictBodyBytes: int('GRAFT_MAX_PREDICT_BYTES', 32 * 1024 ** 2, 1024),
      predictPixels: int('GRAFT_MAX_PREDICT_PIXELS', 160_000_000, 1),
      predictDecodePixels: int('GRAFT_PREDICT_DECODE_PIXELS', 320_000_000, 1),
      jsonBodyBytes: int('GRAFT_MAX_JSON_BYTES', 1024 ** 2, 1024),
      jsonDepth: int('GRAFT_MAX_JSON_DEPTH', 32, 2, 1000),
      rateLimitPerMinute: int('GRAFT_RATE_LIMIT', 6000, 0),
      authFailuresPerMinute: int('GRAFT_AUTH_FAILURE_LIMIT', 30, 0),
      tenantPredicts: int('GRAFT_TENANT_PREDICTS', 16, 1, 10_000),
      tenantIngests: int('GRAFT_TENANT_INGESTS', 2, 1, 1_000),
      tenantStorageBytes: int('GRAFT_MAX_TENANT_STORAGE_BYTES', 20 * 1024 ** 3, 1024),
      tenantStreams: int('GRAFT_TENANT_STREAMS', 32, 1, 100_000),
    },
    http: {
      headersTimeoutMs: int('GRAFT_HEADERS_TIMEOUT_MS', 15_000, 100, 600_000),
      requestTimeoutMs: int('GRAFT_REQUEST_TIMEOUT_MS', 300_000, 100, 24 * 3600_000),
      trustProxy,
    },
    jobs: {
      maxMemoryBytes: int('GRAFT_MAX_JOB_MEMORY_BYTES', 8 * 1024 ** 3, 64 * 1024 ** 2),
      maxSeconds: int('GRAFT_MAX_JOB_SECONDS', 6 * 3600, 10, 30 * 24 * 3600),
      tenantQueued: int('GRAFT_MAX_TENANT_JOBS', 20, 1, 100_000),
      tenantConcurrency: int('GRAFT_TENANT_CONCURRENCY', 1, 1, 1000),
      tenantRecords: int('GRAFT_MAX_TENANT_JOB_RECORDS', 1000, 1, 1_000_000),
    },
    importSources,
    predict: {
      maxBatch: int('GRAFT_PREDICT_MAX_BATCH', 16, 1, 1024),
      maxWaitMs: int('GRAFT_PREDICT_MAX_WAIT_MS', 3, 0, 1000),
      cacheBytes: int('GRAFT_MODEL_CACHE_BYTES', 1024 ** 3, 1024 ** 2),
      engine: predictEngine as GraftConfig['predict']['engine'],
    },
    int8: {
      enabled: bool('GRAFT_INT8', true),
      calibrationImages: int('GRAFT_INT8_CALIBRATION_IMAGES', 256, 8, 10_000),
      validationImages: int('GRAFT_INT8_VALIDATION_IMAGES', 2_000, 10, 1_000_000),
    },
    jobAttempts: int('GRAFT_JOB_ATTEMPTS', 3, 1, 100),
    jobLockMs: int('GRAFT_JOB_LOCK_MS', 30_000, 1_000, 600_000),
    outageToleranceMs: duration('GRAFT_OUTAGE_TOLERANCE', 10 * 60_000, 24 * 3_600_000),
    workerMetricsPort: int('GRAFT_WORKER_METRICS_PORT', 9464, 0, 65535),
  };
  if (config.http.headersTimeoutMs > config.http.requestTimeoutMs) {
    problems.push('GRAFT_HEADERS_TIMEOUT_MS must not be more than GRAFT_REQUEST_TIMEOUT_MS');
  }
  if (problems.length) throw new ConfigError(problems);
  return config;
}

export const cpuCount = () => os.availableParallelism?.() ?? os.cpus().length;
export * from './logger';

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

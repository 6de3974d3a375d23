import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '@graft/config';

describe('loadConfig', () => {
  it('fills in the embedded defaults', () => {
    const c = loadConfig({ GRAFT_BACKBONES: '/models' });
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8080);
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.redisUrlExplicit).toBe(false);
    expect(c.s3.endpoint).toBeNull();
    expect(c.s3.bucket).toBe('graft');
    expect(c.apiKeys).toEqual([]);
    expect(c.workerConcurrency).toBe(1);
    expect(c.backbones).toBe('/models');
  });

  it('parses API keys as tenant:key pairs', () => {
    const c = loadConfig({ GRAFT_API_KEYS: 'alpha:key-aaaaaaaa, beta:key-bbbbbbbb' });
    expect(c.apiKeys).toEqual([
      { tenant: 'alpha', key: 'key-aaaaaaaa' },
      { tenant: 'beta', key: 'key-bbbbbbbb' },
    ]);
  });

  it('names every bad variable in one error, without echoing keys', () => {
    let err: unknown;
    try {
      loadConfig({ PORT: 'abc', LOG_LEVEL: 'loud', REDIS_URL: 'http://x', S3_BUCKET: 'Bad_Bucket', GRAFT_BACKBONES: 's3://No_Such/prefix', GRAFT_API_KEYS: 'nokey,t:short', WORKER_CONCURRENCY: '0' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    for (const name of ['PORT', 'LOG_LEVEL', 'REDIS_URL', 'S3_BUCKET', 'GRAFT_BACKBONES', 'GRAFT_API_KEYS', 'WORKER_CONCURRENCY']) {
      expect(problems).toContain(name);
    }
    expect(problems).not.toContain('short');
  });

  it("reads /predict's ONNX Runtime workers and threads, the threads left to the cores where unset", () => {
    expect(loadConfig({}).predict).toMatchObject({ workers: 1, threads: null });
    expect(loadConfig({ GRAFT_PREDICT_WORKERS: '2', GRAFT_PREDICT_THREADS: '1' }).predict).toMatchObject({ workers: 2, threads: 1 });
    expect(() => loadConfig({ GRAFT_PREDICT_WORKERS: '0' })).toThrow(/GRAFT_PREDICT_WORKERS="0": expected an integer from 1/);
    expect(() => loadConfig({ GRAFT_PREDICT_THREADS: 'all' })).toThrow(/GRAFT_PREDICT_THREADS="all"/);
  });

  it('keeps an s3:// backbone source as given, without a trailing slash', () => {
    expect(loadConfig({ GRAFT_BACKBONES: 's3://models-bucket/team/backbones/' }).backbones).toBe('s3://models-bucket/team/backbones');
  });

  it('has safe defaults for the request, job, tenant and import limits', () => {
    const c = loadConfig({});
    expect(c.http).toEqual({ headersTimeoutMs: 15_000, requestTimeoutMs: 300_000, trustProxy: false });
    expect(c.limits).toMatchObject({ jsonBodyBytes: 1024 ** 2, jsonDepth: 32, predictPixels: 160_000_000, authFailuresPerMinute: 30 });
    expect(c.jobs).toMatchObject({ maxMemoryBytes: 8 * 1024 ** 3, maxSeconds: 21_600, tenantQueued: 20, tenantConcurrency: 1 });
    // Import reads nothing until the operator names what it may read.
    expect(c.importSources).toEqual([]);
  });

  it('parses import sources per tenant, with a trailing slash on each prefix', () => {
    const c = loadConfig({ GRAFT_IMPORT_SOURCES: 'alpha=s3://shared-in/alpha, *=s3://public-sets/, beta=s3://bucket-b' });
    expect(c.importSources).toEqual([
      { tenant: 'alpha', bucket: 'shared-in', prefix: 'alpha/' },
      { tenant: '*', bucket: 'public-sets', prefix: '' },
      { tenant: 'beta', bucket: 'bucket-b', prefix: '' },
    ]);
  });

  it('reads GRAFT_TRUST_PROXY as off, a number of hops, or a list of addresses', () => {
    expect(loadConfig({}).http.trustProxy).toBe(false);
    expect(loadConfig({ GRAFT_TRUST_PROXY: '1' }).http.trustProxy).toBe(1);
    expect(loadConfig({ GRAFT_TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).http.trustProxy).toEqual(['10.0.0.0/8', '127.0.0.1']);
    expect(() => loadConfig({ GRAFT_TRUST_PROXY: 'proxy.example' })).toThrow(/GRAFT_TRUST_PROXY/);
  });

  it('names bad limits: import sources, a header timeout longer than the request timeout, a JSON depth of 1', () => {
    let err: unknown;
    try {
      loadConfig({ GRAFT_IMPORT_SOURCES: 'alpha:s3://x', GRAFT_HEADERS_TIMEOUT_MS: '60000', GRAFT_REQUEST_TIMEOUT_MS: '1000', GRAFT_MAX_JSON_DEPTH: '1', GRAFT_MAX_JOB_MEMORY_BYTES: '1000' });
    } catch (e) {
      err = e;
    }
    const problems = (err as ConfigError).problems.join('\n');
    for (const name of ['GRAFT_IMPORT_SOURCES', 'GRAFT_HEADERS_TIMEOUT_MS', 'GRAFT_MAX_JSON_DEPTH', 'GRAFT_MAX_JOB_MEMORY_BYTES']) {
      expect(problems).toContain(name);
    }
  });

  it('reads GRAFT_OUTAGE_TOLERANCE as a duration, ten minutes unless set, and rejects what is not one', () => {
    expect(loadConfig({}).outageToleranceMs).toBe(600_000);
    expect(loadConfig({ GRAFT_OUTAGE_TOLERANCE: '90' }).outageToleranceMs).toBe(90_000);
    expect(loadConfig({ GRAFT_OUTAGE_TOLERANCE: '45s' }).outageToleranceMs).toBe(45_000);
    expect(loadConfig({ GRAFT_OUTAGE_TOLERANCE: '15m' }).outageToleranceMs).toBe(900_000);
    expect(loadConfig({ GRAFT_OUTAGE_TOLERANCE: '500ms' }).outageToleranceMs).toBe(500);
    expect(loadConfig({ GRAFT_OUTAGE_TOLERANCE: '0' }).outageToleranceMs).toBe(0);
    for (const bad of ['soon', '-5', '10 minutes', '25h']) {
      expect(() => loadConfig({ GRAFT_OUTAGE_TOLERANCE: bad }), bad).toThrow(/GRAFT_OUTAGE_TOLERANCE/);
    }
  });
});

// Resource limits at the HTTP layer, against a listening API on a real Redis and S3: trickled requests are cut
// off, a refused request's body is not read, deep JSON is refused before it is parsed, anonymous endpoints
// carry no tenant data, and failed keys are throttled through Redis for every API process at once.
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '@graft/storage';
import { acceptConfig } from '@graft/contract';
import { buildApp } from '../src/app';
import { createDeps, type ApiDeps } from '../src/deps';
import { testConfig } from '../../../test/support/services';
import http from 'node:http';
import net from 'node:net';
import { multipartZeros, postStream, trickle } from '../../../test/support/raw-http';

const KEY = 'abuse-key-0123456789';
const H = { authorization: `Bearer ${KEY}` };
const OTHER = 'other-key-0123456789';

describe('HTTP limits', () => {
  let deps: ApiDeps;
  let app: FastifyInstance;
  let port: number;
  let base: string;

  beforeAll(async () => {
    deps = createDeps(
      testConfig({
        GRAFT_API_KEYS: `abuser:${KEY},other:${OTHER}`,
        GRAFT_TENANT_STREAMS: '2',
        GRAFT_HEADERS_TIMEOUT_MS: '800',
        GRAFT_REQUEST_TIMEOUT_MS: '1500',
        GRAFT_MAX_PREDICT_BYTES: String(4 * 1024 * 1024),
        GRAFT_MAX_IMAGE_PIXELS: '1000000',
        GRAFT_MAX_PREDICT_PIXELS: '1500000',
        GRAFT_AUTH_FAILURE_LIMIT: '1000',
      }),
    );
    await deps.storage.ensureBucket();
    app = await buildApp(deps);
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
    // A model record is all /predict needs to get past the model lookup to the body checks.
    await deps.storage.putJson(keys.modelRecord('abuser', 'mdl_known'), {
      id: 'mdl_known', jobId: 'job_known', datasetId: 'ds_x', labels: ['a', 'b'], backbone: null, method: 'scratch',
      inputSize: 20, metrics: {}, artifacts: [], createdAt: new Date().toISOString(),
    });
  });
  afterAll(async () => {
    await app?.close();
    await deps?.close();
  });

  it('cuts off a body trickled a byte at a time, and a request line whose headers never end', async () => {
    const body = await trickle(
      port,
      `POST /v1/datasets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/zip\r\nContent-Length: 100000\r\n\r\n`,
      { everyMs: 100, giveUpMs: 20_000 },
    );
    expect(body.closedByServer).toBe(true);
    expect(body.received).toMatch(/^HTTP\/1\.1 408/);

    const headers = await trickle(port, 'GET /healthz HTTP/1.1\r\n', { trickle: 'X-Slow: ' + 'a'.repeat(10_000), everyMs: 100, giveUpMs: 20_000 });
    expect(headers.closedByServer).toBe(true);
    expect(headers.received).not.toMatch(/200 OK/);
  });

  it('answers a request without a key at once and closes the connection soon after, with its body unread', async () => {
    const r = await trickle(
      port,
      'POST /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Type: application/zip\r\nContent-Length: 100000\r\n\r\n',
      { everyMs: 50, giveUpMs: 20_000 },
    );
    expect(r.received).toMatch(/^HTTP\/1\.1 401/);
    expect(r.closedByServer).toBe(true);
  });

  it('reads no body for a model that does not exist, and no more than the limit for one that does', async () => {
    const boundary = 'abuseboundary';
    const type = `multipart/form-data; boundary=${boundary}`;
    // 30 parts of 8 MiB (240 MiB) each time; no content-length, so only counting while reading can stop it.
    const missing = await postStream(base, '/v1/models/mdl_missing/predict', { ...H, 'content-type': type }, multipartZeros(boundary, 'image', 30, 8 << 20));
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).error.code).toBe('MODEL_NOT_FOUND');
    expect(missing.sent).toBeLessThan(40 << 20);

    const known = await postStream(base, '/v1/models/mdl_known/predict', { ...H, 'content-type': type }, multipartZeros(boundary, 'image', 30, 1 << 20));
    expect(known.status, known.body).toBe(413);
    expect(JSON.parse(known.body).error.message).toContain('GRAFT_MAX_PREDICT_BYTES');
    expect(known.sent).toBeLessThan(40 << 20);

    const declared = await app.inject({
      method: 'POST', url: '/v1/models/mdl_missing/predict',
      headers: { ...H, 'content-type': 'image/png', 'content-length': String(5 << 20) }, payload: Buffer.alloc(5 << 20),
    });
    expect(declared.statusCode).toBe(413);
  });

  it('holds a tenant to GRAFT_TENANT_STREAMS open event streams, and counts a closed one out', async () => {
    const now = new Date().toISOString();
    await deps.queue.jobs.create({
      id: 'job_streamed', tenant: 'abuser', datasetId: 'ds_x', state: 'queued', phase: null, progress: 0, epoch: null, epochs: null,
      etaSeconds: null, config: acceptConfig({}, 224), history: [], test: null, validation: null, modelId: null, error: null, attempts: 0, backend: null,
      cancelRequested: false, createdAt: now, startedAt: null, finishedAt: null,
    });
    const open = () =>
      new Promise<{ status: number; req: http.ClientRequest }>((resolve) => {
        const req = http.get(`${base}/v1/jobs/job_streamed/events`, { headers: H, agent: false }, (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, req });
        });
        req.on('error', () => {});
      });
    const first = await open();
    const second = await open();
    expect([first.status, second.status]).toEqual([200, 200]);
    expect((await open()).status).toBe(429);
    first.req.destroy();
    let again = 429;
    for (let i = 0; i < 100 && again === 429; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const s = await open();
      again = s.status;
      if (again === 200) s.req.destroy();
    }
    expect(again).toBe(200);
    second.req.destroy();
  });

  it('refuses images over the pixel limits, and formats that uploads refuse, before decoding them', async () => {
    const predict = (payload: object) =>
      app.inject({ method: 'POST', url: '/v1/models/mdl_known/predict', headers: H, payload });
    const b64 = (b: Buffer) => b.toString('base64');
    const big = await sharp({ create: { width: 1200, height: 1000, channels: 3, background: '#777' } }).png().toBuffer();
    const r1 = await predict({ images: [b64(big)] });
    expect(r1.statusCode).toBe(413);
    expect(r1.json().error).toMatchObject({ code: 'IMAGE_TOO_LARGE', details: { index: 0, width: 1200, height: 1000 } });

    const small = await sharp({ create: { width: 900, height: 900, channels: 3, background: '#777' } }).jpeg().toBuffer();
    const r2 = await predict({ images: [b64(small), b64(small)] });
    expect(r2.statusCode).toBe(413);
    expect(r2.json().error.message).toContain('GRAFT_MAX_PREDICT_PIXELS');

    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>');
    const gif = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).gif().toBuffer();
    const tiff = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).tiff().toBuffer();
    for (const [bytes, format] of [[svg, 'svg'], [gif, 'gif'], [tiff, 'tiff']] as const) {
      const r = await predict({ images: [b64(small), b64(bytes)] });
      expect(r.statusCode, format).toBe(400);
      expect(r.json().error).toMatchObject({ code: 'INVALID_IMAGE', details: { index: 1, format } });
    }
  });

  it('refuses deeply nested JSON by its text, naming the limit', async () => {
    const deep = '{"a":'.repeat(5000) + '1' + '}'.repeat(5000);
    const r = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { ...H, 'content-type': 'application/json' }, payload: deep });
    expect(r.statusCode).toBe(400);
    expect(r.json().error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'body' } });
    expect(r.json().error.message).toContain('GRAFT_MAX_JSON_DEPTH');
    // Nesting inside strings is not nesting.
    const inString = await app.inject({
      method: 'POST', url: '/v1/jobs', headers: { ...H, 'content-type': 'application/json' },
      payload: JSON.stringify({ datasetId: 'ds_nothere', config: { backbone: '['.repeat(90) } }),
    });
    expect(inString.json().error.details?.field).not.toBe('body');
  });

  it('caps JSON bodies other than /predict at GRAFT_MAX_JSON_BYTES', async () => {
    const r = await app.inject({
      method: 'POST', url: '/v1/jobs', headers: { ...H, 'content-type': 'application/json' },
      payload: JSON.stringify({ datasetId: 'ds_x', pad: 'x'.repeat(2 << 20) }),
    });
    expect(r.statusCode).toBe(413);
  });

  it('bounds every free-text field: fineTuning.fromLayer, and the multipart name as the ?name= query', async () => {
    const job = await app.inject({
      method: 'POST', url: '/v1/jobs', headers: H,
      payload: { datasetId: 'ds_abc', config: { method: 'fine_tuning', fineTuning: { fromLayer: 'x'.repeat(100_000) } } },
    });
    expect(job.statusCode).toBe(400);
    expect(job.json().error.details.fields.map((f: { field: string }) => f.field)).toContain('config.fineTuning.fromLayer');
    expect(job.body.length).toBeLessThan(2_000);

    const boundary = 'nameboundary';
    const named = (name: string) =>
      app.inject({
        method: 'POST', url: '/v1/datasets',
        headers: { ...H, 'content-type': `multipart/form-data; boundary=${boundary}` },
        payload: Buffer.concat([
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n${name}\r\n`),
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.zip"\r\nContent-Type: application/zip\r\n\r\nPK\r\n`),
          Buffer.from(`--${boundary}--\r\n`),
        ]),
      });
    for (const name of ['n'.repeat(201), 'n'.repeat(1_000_000), '']) {
      const r = await named(name);
      expect(r.statusCode, `${name.length} characters`).toBe(400);
      expect(r.json().error.details?.field).toBe('name');
    }
    expect((await app.inject({ url: '/v1/datasets', headers: H })).json().total).toBe(0);
  });

  it('names no tenant, model or dependency error to anonymous callers, and sends security headers with /docs', async () => {
    const metrics = await app.inject('/metrics');
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).not.toMatch(/\b(mdl|job|ds)_[a-z0-9]|abuser/);
    const ready = await app.inject('/readyz');
    for (const v of Object.values(ready.json().checks)) expect(['ok', 'down']).toContain(v);

    const docs = await app.inject('/docs');
    expect(docs.statusCode).toBe(200);
    expect(docs.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(docs.headers['x-content-type-options']).toBe('nosniff');
    expect(docs.headers['x-frame-options']).toBe('DENY');
  });
});

describe('requests in flight per tenant', () => {
  it("holds a tenant to GRAFT_TENANT_PREDICTS requests in flight, queues GRAFT_TENANT_PREDICT_QUEUE more, and leaves another tenant's alone", async () => {
    const deps = createDeps(
      testConfig({ GRAFT_API_KEYS: `abuser:${KEY},other:${OTHER}`, GRAFT_TENANT_PREDICTS: '2', GRAFT_TENANT_PREDICT_QUEUE: '1' }),
    );
    await deps.storage.ensureBucket();
    await deps.storage.putJson(keys.modelRecord('abuser', 'mdl_known'), {
      id: 'mdl_known', jobId: 'job_known', datasetId: 'ds_x', labels: ['a', 'b'], backbone: null, method: 'scratch',
      inputSize: 20, metrics: {}, artifacts: [], createdAt: new Date().toISOString(),
    });
    const app = await buildApp(deps);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    const slow: net.Socket[] = [];
    let arrived = 0;
    const arrivals: (() => void)[] = [];
    app.server.on('request', () => {
      arrived++;
      arrivals.splice(0).forEach((f) => f());
    });
    /** A predict of the tenant whose body never comes: it takes a slot, or waits for one. */
    const slowPredict = async () => {
      const before = arrived;
      const s = net.connect(port, '127.0.0.1', () =>
        s.write(`POST /v1/models/mdl_known/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n`),
      );
      s.on('error', () => {});
      slow.push(s);
      while (arrived === before) await new Promise<void>((r) => arrivals.push(r));
      // Its hooks (authentication, then the count) run just after; nothing else competes for the slots.
      await new Promise((r) => setTimeout(r, 200));
      return s;
    };
    try {
      const [first] = [await slowPredict(), await slowPredict()];
      const waiting = await slowPredict();
      const png = await sharp({ create: { width: 30, height: 30, channels: 3, background: '#123' } }).png().toBuffer();
      const predict = (key: string, model = 'mdl_known') =>
        app.inject({ method: 'POST', url: `/v1/models/${model}/predict`, headers: { authorization: `Bearer ${key}`, 'content-type': 'image/png' }, payload: png });
      // Two in flight and one waiting: the next is refused, and told when to retry.
      const refused = await predict(KEY);
      expect(refused.statusCode).toBe(429);
      expect(refused.headers['retry-after']).toBe('1');
      expect(refused.json().error.message).toContain('GRAFT_TENANT_PREDICTS');
      expect(refused.json().error.message).toContain('GRAFT_TENANT_PREDICT_QUEUE');
      expect(refused.json().error.details).toMatchObject({ limit: 2, queue: 1, retryAfterSeconds: 1 });
      // The other tenant gets past the limit, to the model lookup (it has no such model).
      expect((await predict(OTHER)).statusCode).toBe(404);
      // The waiting client goes away: its place in the queue is free again, and the next request waits there.
      waiting.destroy();
      let queued: ReturnType<typeof predict>;
      for (let i = 0; ; i++) {
        let answered = false;
        queued = predict(KEY, 'mdl_missing');
        void queued.then(() => (answered = true));
        await new Promise((r) => setTimeout(r, 200));
        if (!answered) break;
        // Refused while the server had not yet seen the client go: try again.
        expect((await queued).statusCode).toBe(429);
        expect(i).toBeLessThan(20);
      }
      // A slot frees: the waiting request takes it and goes on to the model lookup.
      first.destroy();
      expect((await queued).statusCode).toBe(404);
      for (const s of slow) s.destroy();
      let after = 429;
      for (let i = 0; i < 100 && after === 429; i++) {
        await new Promise((r) => setTimeout(r, 20));
        after = (await predict(KEY, 'mdl_missing')).statusCode;
      }
      expect(after).toBe(404);
    } finally {
      for (const s of slow) s.destroy();
      await app.close();
      await deps.close();
    }
  });
});

/**
 * Waits for the next minute where less than 10 s of this one are left: the limits count in fixed per-minute windows
 * (Date.now() / 60 s), and a window turning over between the requests of a test would split their count.
 */
async function clearOfMinuteTurn(): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 10_000) await new Promise((r) => setTimeout(r, left + 50));
}

const limiterReady = (d: ApiDeps) =>
  new Promise<void>((resolve) => (d.limiterRedis.status === 'ready' ? resolve() : d.limiterRedis.once('ready', () => resolve())));

describe('rate limits shared through Redis', () => {
  it('throttles failed keys per address over every API process, right key or not, and counts /metrics too', async () => {
    const env = { GRAFT_API_KEYS: `abuser:${KEY}`, GRAFT_AUTH_FAILURE_LIMIT: '5', GRAFT_RATE_LIMIT: '8' };
    const first = createDeps(testConfig(env));
    // A second API process on the same Redis and queue prefix.
    const second = createDeps({ ...testConfig(env), queuePrefix: first.config.queuePrefix, s3: first.config.s3 });
    await first.storage.ensureBucket();
    const apps = [await buildApp(first), await buildApp(second)];
    // The limits are skipped while Redis cannot be reached; here it can, once connected.
    await Promise.all([first, second].map((d) => limiterReady(d)));
    await clearOfMinuteTurn();
    try {
      const wrong = { authorization: 'Bearer not-the-key-000000' };
      const attacker = '10.9.9.9';
      const codes: number[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await apps[i % 2]!.inject({ url: '/v1/datasets', headers: wrong, remoteAddress: attacker });
        codes.push(r.statusCode);
      }
      expect(codes).toEqual([401, 401, 401, 401, 401, 429]);
      // While throttled, a right guess is not told apart from a wrong one.
      const right = await apps[0]!.inject({ url: '/v1/datasets', headers: H, remoteAddress: attacker });
      expect(right.statusCode).toBe(429);
      expect(right.json().error.code).toBe('RATE_LIMITED');
      // Another address is not affected.
      expect((await apps[1]!.inject({ url: '/v1/datasets', headers: H, remoteAddress: '10.9.9.10' })).statusCode).toBe(200);

      // The request limit is one budget over both processes, and /metrics and /docs/json are inside it.
      const anon = '10.7.7.7';
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) {
        const url = i % 2 ? '/metrics' : '/docs/json';
        statuses.push((await apps[i % 2]!.inject({ url, remoteAddress: anon })).statusCode);
      }
      expect(statuses.filter((s) => s === 200)).toHaveLength(8);
      expect(statuses.slice(8)).toEqual([429, 429]);
    } finally {
      for (const a of apps) await a.close();
      await first.close();
      await second.close();
    }
  });

  it('counts each client behind a trusted proxy apart, by X-Forwarded-For', async () => {
    const deps = createDeps(testConfig({ GRAFT_API_KEYS: `abuser:${KEY}`, GRAFT_AUTH_FAILURE_LIMIT: '2', GRAFT_TRUST_PROXY: '127.0.0.1' }));
    const app = await buildApp(deps);
    await limiterReady(deps);
    await clearOfMinuteTurn();
    try {
      const wrong = (client: string) =>
        app.inject({ url: '/v1/datasets', headers: { authorization: 'Bearer wrong-key-00000000', 'x-forwarded-for': client }, remoteAddress: '127.0.0.1' });
      const codes = [];
      for (let i = 0; i < 3; i++) codes.push((await wrong('198.51.100.7')).statusCode);
      expect(codes).toEqual([401, 401, 429]);
      expect((await wrong('198.51.100.8')).statusCode).toBe(401);
    } finally {
      await app.close();
      await deps.close();
    }
  });
});

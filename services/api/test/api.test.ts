// The API against a real Redis and a real S3-protocol server, through app.inject().
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app';
import { createDeps, type ApiDeps } from '../src/deps';
import { parseTrainJobPayload } from '@graft/queue';
import { testConfig, uniqueName } from '../../../test/support/services';
import { patternDataset, zipOf, tarOf } from '../../../test/support/images';
import { createReadStream } from 'node:fs';
import { extract as tarExtract } from 'tar-stream';
import type { Storage } from '@graft/storage';
import { IMPORT_READS_AT_ONCE, packPrefix } from '../src/datasets/import';

const A = 'key-tenant-a-0123456789';
const B = 'key-tenant-b-0123456789';
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

describe('API', () => {
  let deps: ApiDeps;
  let app: FastifyInstance;
  let zip: Buffer;

  beforeAll(async () => {
    deps = createDeps(testConfig({ GRAFT_API_KEYS: `alpha:${A},beta:${B}` }));
    await deps.storage.ensureBucket();
    app = await buildApp(deps);
    zip = await zipOf(await patternDataset({ train: 6, validation: 2 }));
  });
  afterAll(async () => {
    await app?.close();
    await deps?.close();
  });

  const upload = (key: string, body: Buffer, type = 'application/zip', query = '') =>
    app.inject({ method: 'POST', url: `/v1/datasets${query}`, headers: { ...auth(key), 'content-type': type }, payload: body });

  it('answers health and readiness without a key, and names its dependencies', async () => {
    expect((await app.inject('/healthz')).json()).toEqual({ status: 'ok' });
    const ready = await app.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json().checks).toEqual({ redis: 'ok', s3: 'ok' });
  });

  it('rejects missing and wrong keys with 401', async () => {
    const none = await app.inject('/v1/datasets');
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe('UNAUTHORIZED');
    const wrong = await app.inject({ url: '/v1/datasets', headers: auth('not-a-real-key-123') });
    expect(wrong.statusCode).toBe(401);
  });

  it('uploads a zip as a raw body and as multipart, and lists, gets and deletes datasets', async () => {
    const raw = await upload(A, zip, 'application/zip', '?name=patterns');
    expect(raw.statusCode).toBe(201);
    const ds = raw.json();
    expect(ds.id).toMatch(/^ds_/);
    expect(ds.name).toBe('patterns');
    expect(ds.classes).toEqual(['dots', 'stripes']);
    expect(ds.splits).toEqual({ train: { dots: 6, stripes: 6 }, validation: { dots: 2, stripes: 2 } });
    expect(ds.imageCount).toBe(16);

    const boundary = 'graftboundary';
    const multipart = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nmulti\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.tar"\r\nContent-Type: application/x-tar\r\n\r\n`),
      await tarOf(await patternDataset({ train: 3 }, 7)),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const mp = await upload(A, multipart, `multipart/form-data; boundary=${boundary}`);
    expect(mp.statusCode).toBe(201);
    expect(mp.json().name).toBe('multi');
    expect(mp.json().splits.train).toEqual({ dots: 3, stripes: 3 });

    // A name means one dataset: a second upload under a name in use is refused, before or after the body is read.
    const sameName = await upload(A, zip, 'application/zip', '?name=patterns');
    expect(sameName.statusCode).toBe(409);
    expect(sameName.json().error).toMatchObject({ code: 'DATASET_NAME_TAKEN', details: { field: 'name', datasetId: ds.id } });
    const sameInForm = await upload(A, multipart.toString('latin1').replace('\r\n\r\nmulti\r\n', '\r\n\r\npatterns\r\n') as unknown as Buffer, `multipart/form-data; boundary=${boundary}`);
    expect(sameInForm.json().error?.code).toBe('DATASET_NAME_TAKEN');
    // Another tenant may use the same name.
    const other = await upload(B, zip, 'application/zip', '?name=patterns');
    expect(other.statusCode).toBe(201);
    expect((await app.inject({ method: 'DELETE', url: `/v1/datasets/${other.json().id}`, headers: auth(B) })).statusCode).toBe(204);

    const list = (await app.inject({ url: '/v1/datasets', headers: auth(A) })).json();
    expect(list.items.map((d: any) => d.id).sort()).toEqual([ds.id, mp.json().id].sort());
    expect((await app.inject({ url: `/v1/datasets/${ds.id}`, headers: auth(A) })).json().id).toBe(ds.id);

    const del = await app.inject({ method: 'DELETE', url: `/v1/datasets/${mp.json().id}`, headers: auth(A) });
    expect(del.statusCode).toBe(204);
    expect((await app.inject({ url: `/v1/datasets/${mp.json().id}`, headers: auth(A) })).statusCode).toBe(404);
    // Nothing of the deleted dataset remains in storage.
    const left: string[] = [];
    for await (const o of deps.storage.listObjects(`tenants/alpha/datasets/${mp.json().id}/`)) left.push(o.key);
    expect(left).toEqual([]);
  });

  it('rejects bad archives with a 4xx naming the problem and leaves nothing behind', async () => {
    const before: string[] = [];
    for await (const o of deps.storage.listObjects('tenants/alpha/datasets/')) before.push(o.key);
    const notArchive = await upload(A, Buffer.from('hello, this is not an archive at all'));
    expect(notArchive.statusCode).toBe(400);
    expect(notArchive.json().error.code).toBe('INVALID_ARCHIVE');
    const single = await upload(A, await zipOf((await patternDataset({ train: 3 })).filter((e) => e.path.includes('/dots/'))));
    expect(single.statusCode).toBe(400);
    expect(single.json().error.code).toBe('TOO_FEW_CLASSES');
    const json = await app.inject({ method: 'POST', url: '/v1/datasets', headers: auth(A), payload: { a: 1 } });
    expect(json.statusCode).toBe(415);
    const after: string[] = [];
    for await (const o of deps.storage.listObjects('tenants/alpha/datasets/')) after.push(o.key);
    expect(after.sort()).toEqual(before.sort());
  });

  it('validates job configs: defaults filled in, unknown or out-of-range fields named', async () => {
    const ds = (await upload(A, zip)).json();
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: auth(A),
      payload: { datasetId: ds.id, config: { head: { units: -3 }, learningrate: 1 } },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toContain('config.head.units');
    expect(bad.json().error.message).toContain('config.learningrate');
    const badBackbone = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: auth(A),
      payload: { datasetId: ds.id, config: { backbone: 'no_such_net' } },
    });
    expect(badBackbone.statusCode).toBe(400);
    expect(badBackbone.json().error.message).toContain('config.backbone');
    const missing = await app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(A), payload: { datasetId: 'ds_doesnotexist' } });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('DATASET_NOT_FOUND');

    const ok = await app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(A), payload: { datasetId: ds.id, config: { batchSize: 16 } } });
    expect(ok.statusCode).toBe(202);
    const job = ok.json();
    expect(job.state).toBe('queued');
    expect(job.config.batchSize).toBe(16);
    expect(job.config.method).toBe('fine_tuning');
    expect(job.config.augmentation.rotationRange).toBe(40);
    expect(job.config.fineTuning.learningRate).toBe(1e-5);
    // The input size is resolved as the worker will train: the backbone's training size when the config names none,
    // and the queued payload is the same resolved config as the record, which the worker trains as it is.
    expect(job.config.inputSize).toBe(288);
    const queued = (await deps.queue.queue.getJob(job.id))!.data;
    expect(queued.config).toEqual(job.config);
    expect(parseTrainJobPayload(queued).config).toEqual(job.config);

    // The dataset is in use while the job is queued.
    const del = await app.inject({ method: 'DELETE', url: `/v1/datasets/${ds.id}`, headers: auth(A) });
    expect(del.statusCode).toBe(409);

    const list = (await app.inject({ url: '/v1/jobs?state=queued', headers: auth(A) })).json();
    expect(list.items.map((j: any) => j.id)).toContain(job.id);

    // No worker runs here: cancelling the queued job takes it off the queue at once.
    const cancel = await app.inject({ method: 'POST', url: `/v1/jobs/${job.id}/cancel`, headers: auth(A) });
    expect(cancel.statusCode).toBe(202);
    expect(cancel.json().state).toBe('cancelled');
    expect((await app.inject({ url: `/v1/jobs/${job.id}`, headers: auth(A) })).json().state).toBe('cancelled');
    expect(await deps.queue.queue.getJob(job.id)).toBeUndefined();
    const again = await app.inject({ method: 'POST', url: `/v1/jobs/${job.id}/cancel`, headers: auth(A) });
    expect(again.statusCode).toBe(409);
  });

  it("keeps tenants apart: another tenant's ids answer 404", async () => {
    const ds = (await upload(A, zip)).json();
    const job = (await app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(A), payload: { datasetId: ds.id } })).json();
    for (const url of [`/v1/datasets/${ds.id}`, `/v1/jobs/${job.id}`, `/v1/jobs/${job.id}/events`]) {
      const r = await app.inject({ url, headers: auth(B) });
      expect(r.statusCode, url).toBe(404);
    }
    expect((await app.inject({ method: 'POST', url: `/v1/jobs/${job.id}/cancel`, headers: auth(B) })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: `/v1/datasets/${ds.id}`, headers: auth(B) })).statusCode).toBe(404);
    const bJob = await app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(B), payload: { datasetId: ds.id } });
    expect(bJob.statusCode).toBe(404);
    expect((await app.inject({ url: '/v1/datasets', headers: auth(B) })).json().items).toEqual([]);
    expect((await app.inject({ url: '/v1/jobs', headers: auth(B) })).json().items).toEqual([]);
    await app.inject({ method: 'POST', url: `/v1/jobs/${job.id}/cancel`, headers: auth(A) });
  });

  it('serves the OpenAPI document and Prometheus metrics', async () => {
    const doc = (await app.inject('/docs/json')).json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/datasets', '/v1/jobs', '/v1/jobs/{id}', '/v1/models/{id}/predict']));
    const m = await app.inject('/metrics');
    expect(m.statusCode).toBe(200);
    expect(m.body).toContain('graft_http_request_duration_seconds');
    expect(m.body).toMatch(/graft_queue_jobs\{state="waiting"\}/);
  });

  it('lists backbones with their feature shapes', async () => {
    const list = (await app.inject({ url: '/v1/backbones', headers: auth(A) })).json();
    const mn = list.find((b: any) => b.name === 'mobilenet_v1_0.25_224');
    expect(mn.weights.available).toBe(true);
    expect(mn.featureShape).toEqual([7, 7, 256]);
    const one = await app.inject({ url: '/v1/backbones/mobilenet_v1_0.25_224?inputSize=160', headers: auth(A) });
    expect(one.json().featureShape).toEqual([5, 5, 256]);
    expect((await app.inject({ url: '/v1/backbones/nope', headers: auth(A) })).statusCode).toBe(404);
  });

  it('answers 404 for unknown models and routes with the error shape', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/models/mdl_nothere/predict', headers: { ...auth(A), 'content-type': 'image/jpeg' }, payload: Buffer.from([0xff, 0xd8]) });
    expect(r.statusCode).toBe(404);
    expect(r.json().error.code).toBe('MODEL_NOT_FOUND');
    const nr = await app.inject({ url: '/v2/nothing', headers: auth(A) });
    expect(nr.statusCode).toBe(404);
    expect(nr.json().error.code).toBe('NOT_FOUND');
  });
});

describe('dataset import from S3', () => {
  it('imports the class folders under an allowed S3 prefix, and rejects bad sources', async () => {
    const bucket = uniqueName('graft-test');
    const deps = createDeps(
      testConfig({
        S3_BUCKET: bucket,
        GRAFT_IMPORT_SOURCES: `*=s3://${bucket}/incoming/,*=s3://${bucket}/nothing/,*=s3://${bucket}/tenants/,default=s3://${bucket}/big/`,
        GRAFT_MAX_ENTRY_BYTES: String(1024 * 1024),
      }),
    );
    await deps.storage.ensureBucket();
    const app = await buildApp(deps);
    try {
      for (const e of await patternDataset({ train: 3, validation: 1 }, 11)) {
        await deps.storage.put(`incoming/set1/${e.path}`, e.data);
      }
      // Not an image: never downloaded, never part of the dataset.
      await deps.storage.put('incoming/set1/train/dots/notes.bin', Buffer.alloc(3 * 1024 * 1024));
      const r = await app.inject({
        method: 'POST',
        url: '/v1/datasets/import',
        payload: { source: `s3://${bucket}/incoming/set1` },
      });
      expect(r.statusCode, r.body).toBe(201);
      expect(r.json().name).toBe('set1');
      expect(r.json().splits).toEqual({ train: { dots: 3, stripes: 3 }, validation: { dots: 1, stripes: 1 } });
      const empty = await app.inject({ method: 'POST', url: '/v1/datasets/import', payload: { source: `s3://${bucket}/nothing/` } });
      expect(empty.statusCode).toBe(400);
      expect(empty.json().error.code).toBe('NO_IMAGES');
      const own = await app.inject({ method: 'POST', url: '/v1/datasets/import', payload: { source: `s3://${bucket}/tenants/default/` } });
      expect(own.statusCode).toBe(400);
      expect(own.json().error.message).toContain('own data');
      const bad = await app.inject({ method: 'POST', url: '/v1/datasets/import', payload: { source: 'http://example.com/x' } });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().error.message).toContain('s3://');

      // An image object over the per-file limit is refused by its listed size, before it is downloaded.
      await deps.storage.put('big/cats/huge.jpg', Buffer.alloc(2 * 1024 * 1024));
      const big = await app.inject({ method: 'POST', url: '/v1/datasets/import', payload: { source: `s3://${bucket}/big/` } });
      expect(big.statusCode).toBe(413);
      expect(big.json().error).toMatchObject({ code: 'ENTRY_TOO_LARGE', details: { path: 'cats/huge.jpg' } });

      // Outside the allowed sources: one answer whether the bucket exists or not.
      const outside = await app.inject({ method: 'POST', url: '/v1/datasets/import', payload: { source: `s3://${bucket}/elsewhere/` } });
      const missing = await app.inject({ method: 'POST', url: '/v1/datasets/import', payload: { source: 's3://no-such-bucket-here/x/' } });
      for (const x of [outside, missing]) {
        expect(x.statusCode).toBe(403);
        expect(x.json().error.code).toBe('IMPORT_NOT_ALLOWED');
        expect(x.json().error.message).not.toMatch(/exist/);
      }
    } finally {
      await app.close();
      await deps.close();
    }
  });

  it('downloads several objects at once and packs them in listing order', async () => {
    const bucket = uniqueName('graft-test');
    const deps = createDeps(testConfig({ S3_BUCKET: bucket }));
    await deps.storage.ensureBucket();
    try {
      const entries = await patternDataset({ train: 10 }, 7);
      for (const e of entries) await deps.storage.put(`in/${e.path}`, e.data);
      // The real store, each read held 20 ms: how many are under way at once.
      const source = deps.storage.forBucket(bucket);
      let reading = 0;
      let most = 0;
      const slow = Object.assign(Object.create(source) as Storage, {
        getBuffer: async (key: string) => {
          most = Math.max(most, ++reading);
          await new Promise((r) => setTimeout(r, 20));
          try {
            return await source.getBuffer(key);
          } finally {
            reading--;
          }
        },
      });
      const storage = { forBucket: () => slow } as unknown as Storage;
      const packed = await packPrefix(storage, bucket, 'in/', { entries: 100, bytes: 1e9, objectBytes: 1e7 });
      try {
        const names: string[] = [];
        const same: boolean[] = [];
        const byPath = new Map(entries.map((e) => [e.path, e.data]));
        const extract = tarExtract();
        extract.on('entry', (header, stream, next) => {
          const chunks: Buffer[] = [];
          stream.on('data', (c: unknown) => chunks.push(c as Buffer));
          stream.on('end', () => {
            names.push(header.name);
            same.push(Buffer.concat(chunks).equals(byPath.get(header.name)!));
            next();
          });
        });
        await new Promise<void>((resolve, reject) => createReadStream(packed.file).pipe(extract).on('finish', resolve).on('error', reject));
        expect(names).toEqual(entries.map((e) => e.path).sort());
        expect(same.every(Boolean)).toBe(true);
        expect(most).toBeGreaterThan(1);
        expect(most).toBeLessThanOrEqual(IMPORT_READS_AT_ONCE);
      } finally {
        packed.cleanup();
      }
    } finally {
      await deps.close();
    }
  });

  it('confines each tenant to its own import sources', async () => {
    const bucket = uniqueName('graft-test');
    const deps = createDeps(
      testConfig({ S3_BUCKET: bucket, GRAFT_API_KEYS: `alpha:${A},beta:${B}`, GRAFT_IMPORT_SOURCES: `alpha=s3://${bucket}/alpha-in/` }),
    );
    await deps.storage.ensureBucket();
    const app = await buildApp(deps);
    try {
      for (const e of await patternDataset({ train: 2 }, 3)) await deps.storage.put(`alpha-in/${e.path}`, e.data);
      const mine = await app.inject({ method: 'POST', url: '/v1/datasets/import', headers: auth(A), payload: { source: `s3://${bucket}/alpha-in/` } });
      expect(mine.statusCode, mine.body).toBe(201);
      const theirs = await app.inject({ method: 'POST', url: '/v1/datasets/import', headers: auth(B), payload: { source: `s3://${bucket}/alpha-in/` } });
      expect(theirs.statusCode).toBe(403);
      const wider = await app.inject({ method: 'POST', url: '/v1/datasets/import', headers: auth(A), payload: { source: `s3://${bucket}/` } });
      expect(wider.statusCode).toBe(403);
    } finally {
      await app.close();
      await deps.close();
    }
  });
});

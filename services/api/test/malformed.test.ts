// Malformed uploads and requests: each answers a 4xx with a stable code and a message naming the problem,
// leaves nothing in storage, and the service stays healthy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import yazl from 'yazl';
import { pack as tarPack } from 'tar-stream';
import { buffer as streamToBuffer } from 'node:stream/consumers';
import type { Readable } from 'node:stream';
import { buildApp } from '../src/app';
import { createDeps, type ApiDeps } from '../src/deps';
import { testConfig } from '../../../test/support/services';
import { patternImage, zipOf } from '../../../test/support/images';

const KEY = 'malformed-key-0123456789';
const H = { authorization: `Bearer ${KEY}` };

async function zipRaw(entries: { name: string; data: Buffer; mode?: number; compress?: boolean }[]): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const e of entries) zip.addBuffer(e.data, e.name, { mode: e.mode, compress: e.compress ?? true });
  zip.end();
  return streamToBuffer(zip.outputStream as unknown as Readable);
}

async function tarRaw(entries: { name: string; data?: Buffer; type?: 'file' | 'symlink'; linkname?: string }[]): Promise<Buffer> {
  const p = tarPack();
  for (const e of entries) {
    if (e.type === 'symlink') p.entry({ name: e.name, type: 'symlink', linkname: e.linkname });
    else p.entry({ name: e.name }, e.data!);
  }
  p.finalize();
  return streamToBuffer(p as unknown as Readable);
}

describe('malformed input', () => {
  let deps: ApiDeps;
  let app: FastifyInstance;
  let img: (seed: number) => Promise<Buffer>;
  const stored = async () => {
    const keys: string[] = [];
    for await (const o of deps.storage.listObjects('tenants/')) keys.push(o.key);
    return keys;
  };

  beforeAll(async () => {
    deps = createDeps(
      testConfig({ GRAFT_API_KEYS: `m:${KEY}`, GRAFT_MAX_ARCHIVE_ENTRIES: '50', GRAFT_MAX_ENTRY_BYTES: '1048576', GRAFT_MAX_IMAGE_PIXELS: '1000000', GRAFT_MAX_PREDICT_IMAGES: '4' }),
    );
    await deps.storage.ensureBucket();
    app = await buildApp(deps);
    img = (seed) => patternImage(seed % 2 ? 'dots' : 'stripes', seed, 32);
  });
  afterAll(async () => {
    await app?.close();
    await deps?.close();
  });

  const upload = (body: Buffer, type = 'application/zip') =>
    app.inject({ method: 'POST', url: '/v1/datasets', headers: { ...H, 'content-type': type }, payload: body });

  const twoClasses = async (extra: { name: string; data: Buffer; mode?: number; compress?: boolean }[] = []) => [
    ...(await Promise.all([0, 1, 2].map(async (i) => ({ name: `cats/${i}.jpg`, data: await img(i * 2) })))),
    ...(await Promise.all([0, 1, 2].map(async (i) => ({ name: `dogs/${i}.jpg`, data: await img(i * 2 + 1) })))),
    ...extra,
  ];

  it('rejects each bad archive with a stable code and leaves storage as it was', async () => {
    const good = await zipRaw(await twoClasses());
    const cases: [string, () => Promise<{ body: Buffer; type?: string }>, number, string][] = [
      ['random bytes', async () => ({ body: Buffer.from('\x00\x01garbage'.repeat(100)) }), 400, 'INVALID_ARCHIVE'],
      ['empty body', async () => ({ body: Buffer.alloc(0) }), 400, 'INVALID_ARCHIVE'],
      ['truncated zip', async () => ({ body: good.subarray(0, Math.floor(good.length / 2)) }), 400, 'INVALID_ARCHIVE'],
      ['corrupt zip (central directory overwritten)', async () => {
        const b = Buffer.from(good);
        b.fill(0x41, b.length - 60, b.length - 30);
        return { body: b };
      }, 400, 'INVALID_ARCHIVE'],
      ['corrupt gzip', async () => ({ body: Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(200, 7)]), type: 'application/gzip' }), 400, 'INVALID_ARCHIVE'],
      ['entry with ..', async () => ({ body: await tarRaw([...(await twoClasses()).map((e) => ({ name: e.name, data: e.data })), { name: '../evil/x.jpg', data: await img(9) }]), type: 'application/x-tar' }), 400, 'UNSAFE_PATH'],
      ['absolute path', async () => ({ body: await tarRaw([...(await twoClasses()).map((e) => ({ name: e.name, data: e.data })), { name: '/etc/cats/x.jpg', data: await img(9) }]), type: 'application/x-tar' }), 400, 'UNSAFE_PATH'],
      ['symlink entry', async () => ({ body: await tarRaw([...(await twoClasses()).map((e) => ({ name: e.name, data: e.data })), { name: 'cats/link.jpg', type: 'symlink', linkname: '/etc/passwd' }]), type: 'application/x-tar' }), 400, 'UNSAFE_PATH'],
      ['too many entries', async () => ({ body: await zipRaw(await Promise.all(Array.from({ length: 60 }, async (_, i) => ({ name: `${i % 2 ? 'cats' : 'dogs'}/${i}.jpg`, data: await img(i) })))) }), 413, 'TOO_MANY_ENTRIES'],
      ['compression bomb', async () => ({ body: await zipRaw(await twoClasses([{ name: 'cats/bomb.jpg', data: Buffer.alloc(20 * 1024 * 1024) }])) }), 413, '*'],
      ['only non-images', async () => ({ body: await zipRaw([{ name: 'cats/a.txt', data: Buffer.from('hi') }, { name: 'dogs/b.txt', data: Buffer.from('ho') }]) }), 400, 'NO_IMAGES'],
      ['only undecodable images', async () => ({ body: await zipRaw([{ name: 'cats/a.jpg', data: Buffer.from('not a jpeg') }, { name: 'dogs/b.jpg', data: Buffer.from('nope') }]) }), 400, 'NO_IMAGES'],
      ['a single class', async () => ({ body: await zipRaw((await twoClasses()).filter((e) => e.name.startsWith('cats'))) }), 400, 'TOO_FEW_CLASSES'],
      ['a decompression bomb image', async () => ({
        body: await zipRaw(await twoClasses([{ name: 'cats/huge.png', data: await sharp({ create: { width: 2000, height: 2000, channels: 3, background: 'white' } }).png().toBuffer() }])),
      }), 201, ''],
      ['images too deep in folders', async () => ({ body: await zipRaw([{ name: 'a/b/c/d/cats/1.jpg', data: await img(1) }, { name: 'a/b/c/d/dogs/1.jpg', data: await img(2) }]) }), 400, 'INVALID_LAYOUT'],
    ];
    const before = await stored();
    for (const [name, make, status, code] of cases) {
      const { body, type } = await make();
      const r = await upload(body, type);
      expect(r.statusCode, `${name}: ${r.body}`).toBe(status);
      if (status >= 400) {
        const err = r.json().error;
        if (code !== '*') expect(err.code, name).toBe(code);
        expect(err.message.length, name).toBeGreaterThan(10);
        expect(await stored(), name).toEqual(before);
      } else {
        // Over the pixel limit: the image is rejected and listed, the rest of the upload is kept.
        expect(r.json().rejected.map((x: any) => x.path), name).toContain('cats/huge.png');
        await app.inject({ method: 'DELETE', url: `/v1/datasets/${r.json().id}`, headers: H });
      }
      expect((await app.inject('/healthz')).statusCode).toBe(200);
    }
  });

  it('accepts CMYK, grayscale, 16-bit and EXIF-rotated images, and odd class names', async () => {
    const base = sharp({ create: { width: 40, height: 20, channels: 3, background: { r: 200, g: 30, b: 30 } } });
    const entries = [
      { name: 'Ünïcode cats/cmyk.jpg', data: await base.clone().toColourspace('cmyk').jpeg().toBuffer() },
      { name: 'Ünïcode cats/gray.png', data: await base.clone().grayscale().png().toBuffer() },
      { name: 'dogs & more/16bit.png', data: await base.clone().toColourspace('rgb16').png().toBuffer() },
      { name: 'dogs & more/rotated.jpg', data: await base.clone().jpeg().withMetadata({ orientation: 6 }).toBuffer() },
      { name: 'dogs & more/plain.webp', data: await base.clone().webp().toBuffer() },
    ];
    const r = await upload(await zipRaw(entries));
    expect(r.statusCode, r.body).toBe(201);
    const ds = r.json();
    expect(ds.rejected).toEqual([]);
    expect(ds.classes.sort()).toEqual(['dogs & more', 'Ünïcode cats'].sort());
    expect(ds.splits.train).toEqual({ 'Ünïcode cats': 2, 'dogs & more': 3 });
  });

  it('rejects nonsense configs and bodies with 400 naming the field', async () => {
    const ds = (await upload(await zipOf((await twoClasses()).map((e) => ({ path: e.name, data: e.data }))))).json();
    const cases: [unknown, string][] = [
      [{ datasetId: ds.id, config: { batchSize: 'many' } }, 'config.batchSize'],
      [{ datasetId: ds.id, config: { batchSize: 1e9 } }, 'config.batchSize'],
      [{ datasetId: ds.id, config: { method: 'magic' } }, 'config.method'],
      [{ datasetId: ds.id, config: { augmentation: { fillMode: 'smear' } } }, 'config.augmentation'],
      [{ datasetId: ds.id, config: { featureExtraction: { learningRate: -1 } } }, 'config.featureExtraction'],
      [{ datasetId: ds.id, config: [] }, 'config'],
      [{ datasetId: ds.id, config: { split: { validation: 3 } } }, 'config.split.validation'],
      [{ datasetId: 'not-an-id' }, 'datasetId'],
      [{ config: {} }, 'datasetId'],
      [{ datasetId: ds.id, extra: true }, 'extra'],
    ];
    for (const [payload, field] of cases) {
      const r = await app.inject({ method: 'POST', url: '/v1/jobs', headers: H, payload: payload as object });
      expect(r.statusCode, JSON.stringify(payload)).toBe(400);
      expect(r.json().error.code).toBe('VALIDATION_FAILED');
      expect(r.json().error.message, JSON.stringify(payload)).toContain(field);
    }
    const bad = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { ...H, 'content-type': 'application/json' }, payload: '{"datasetId": ' });
    expect(bad.statusCode).toBe(400);
    const wrongType = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { ...H, 'content-type': 'text/plain' }, payload: 'hello' });
    expect(wrongType.statusCode).toBe(400);
    expect(wrongType.json().error.message).toContain('body');
    expect((await app.inject({ url: '/v1/jobs?state=bogus', headers: H })).statusCode).toBe(400);
    expect((await app.inject({ url: '/v1/jobs/..%2F..%2Fetc', headers: H })).statusCode).toBe(400);
    expect((await app.inject('/healthz')).statusCode).toBe(200);
  });

  it('rejects garbage sent to /predict by its headers, and reads no body for a model that does not exist', async () => {
    const url = '/v1/models/mdl_abc/predict';
    const cases: [Record<string, string>, string | Buffer | object, number][] = [
      [{ 'content-type': 'text/plain' }, 'hello', 415],
      [{ 'content-type': 'application/json' }, { images: 'nope' }, 404],
      [{ 'content-type': 'application/json' }, '{"images": [', 404],
    ];
    for (const [headers, payload, status] of cases) {
      const r = await app.inject({ method: 'POST', url, headers: { ...H, ...headers }, payload: payload as any });
      expect(r.statusCode, String(payload)).toBe(status);
      expect(r.json().error.code).toBeTruthy();
    }
    expect((await app.inject({ method: 'POST', url: `${url}?topK=0`, headers: { ...H, 'content-type': 'image/jpeg' }, payload: Buffer.from([1]) })).statusCode).toBe(404);
    const huge = await app.inject({ method: 'POST', url, headers: { ...H, 'content-type': 'image/jpeg' }, payload: Buffer.alloc(40 * 1024 * 1024) });
    expect(huge.statusCode).toBe(413);
    expect((await app.inject('/healthz')).statusCode).toBe(200);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { Storage, ObjectNotFoundError } from '@graft/storage';
import { testConfig } from '../../../test/support/services';

describe('Storage against a real S3-protocol server', () => {
  const cfg = testConfig();
  const storage = new Storage(cfg.s3);
  beforeAll(() => storage.ensureBucket());
  afterAll(() => storage.close());

  it('puts and gets buffers and JSON, and reports missing objects', async () => {
    await storage.putJson('a/b.json', { x: 1 });
    expect(await storage.getJson('a/b.json')).toEqual({ x: 1 });
    expect(await storage.exists('a/b.json')).toBe(true);
    expect(await storage.exists('a/nope.json')).toBe(false);
    await expect(storage.getBuffer('a/nope.json')).rejects.toBeInstanceOf(ObjectNotFoundError);
    expect(await storage.getJsonOrNull('a/nope.json')).toBeNull();
  });

  it('stores a stream of unknown length byte for byte (multipart, no chunk framing)', async () => {
    const data = randomBytes(9 * 1024 * 1024 + 123);
    const chunks = [data.subarray(0, 3_000_000), data.subarray(3_000_000)];
    await storage.put('big/blob.bin', Readable.from(chunks));
    const back = await storage.getBuffer('big/blob.bin');
    expect(back.length).toBe(data.length);
    expect(back.equals(data)).toBe(true);
  });

  it('lists, copies and deletes by prefix', async () => {
    await Promise.all([1, 2, 3].map((i) => storage.put(`p/${i}.txt`, String(i))));
    await storage.put('p/sub/4.txt', '4');
    expect((await storage.listPrefixes('p/'))).toEqual(['p/sub/']);
    await storage.copyPrefix('p/', 'q/');
    expect((await storage.getBuffer('q/sub/4.txt')).toString()).toBe('4');
    expect(await storage.deletePrefix('p/')).toBe(4);
    const left: string[] = [];
    for await (const o of storage.listObjects('p/')) left.push(o.key);
    expect(left).toEqual([]);
  });
});

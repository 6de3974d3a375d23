// The embedded S3 server stopped at the worst moments, against the real server process: a kill in the middle of
// an overwrite leaves the old object whole, and a metadata file left unreadable by an earlier server (which made
// every listing, and s3rver's HEAD of the bucket, fail, so storage looked down for good) is removed when met.
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedS3, type EmbeddedS3 } from '@graft/devservers';
import { PARTIAL_SUFFIX } from '../src/s3-store';

const BUCKET = 'crash-safe';

/** Files under `dir` whose name ends with `suffix`. */
function filesEnding(dir: string, suffix: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(suffix)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

async function until<T>(what: string, f: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the embedded S3 server stopped at any moment', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-s3-store-'));
  let s3: EmbeddedS3 | undefined;
  afterEach(async () => {
    await s3?.stop();
  });

  const put = (key: string, body: Uint8Array | string) =>
    fetch(`${s3!.endpoint}/${BUCKET}/${key}`, { method: 'PUT', body: typeof body === 'string' ? body : new Uint8Array(body) });
  const get = async (key: string) => {
    const r = await fetch(`${s3!.endpoint}/${BUCKET}/${key}`);
    return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
  };

  it('keeps the old object whole when the server is killed in the middle of overwriting it', async () => {
    const root = path.join(dir, 'overwrite');
    s3 = await startEmbeddedS3({ dir: root });
    expect((await fetch(`${s3.endpoint}/${BUCKET}`, { method: 'PUT' })).status).toBe(200);
    const old = Buffer.alloc(1 << 20, 'a');
    expect((await put('ckpt/slot-0.json', old)).status).toBe(200);

    // A new version of 1 MiB of which a quarter arrives before the server dies.
    const req = http.request(`${s3.endpoint}/${BUCKET}/ckpt/slot-0.json`, { method: 'PUT', headers: { 'content-length': String(1 << 20) } });
    req.on('error', () => {});
    req.write(Buffer.alloc(1 << 18, 'b'));
    const partial = await until('the new version to be written in part', () =>
      filesEnding(root, PARTIAL_SUFFIX).find((f) => fs.statSync(f, { throwIfNoEntry: false })?.size),
    );
    s3.process.kill('SIGKILL');
    await new Promise((r) => s3!.process.once('exit', r));
    req.destroy();
    expect(fs.existsSync(partial)).toBe(true);

    s3 = await startEmbeddedS3({ dir: root, port: s3.port });
    const back = await get('ckpt/slot-0.json');
    expect(back.status).toBe(200);
    expect(back.body.equals(old)).toBe(true);
    expect((await fetch(`${s3.endpoint}/${BUCKET}`, { method: 'HEAD' })).status).toBe(200);
    // What the cut-short write left is gone.
    expect(filesEnding(root, PARTIAL_SUFFIX)).toEqual([]);
    // And the object can be overwritten again, whole.
    expect((await put('ckpt/slot-0.json', 'new')).status).toBe(200);
    expect((await get('ckpt/slot-0.json')).body.toString()).toBe('new');
  });

  it('serves an object whose metadata file a stopped server left empty, and lists the bucket again', async () => {
    const root = path.join(dir, 'metadata');
    s3 = await startEmbeddedS3({ dir: root });
    expect((await fetch(`${s3.endpoint}/${BUCKET}`, { method: 'PUT' })).status).toBe(200);
    expect((await put('jobs/j1/0/best.bin', 'weights')).status).toBe(200);
    expect((await put('jobs/j1/other.json', '{}')).status).toBe(200);
    const [metadata] = filesEnding(root, 'best.bin._S3rver_metadata.json');
    fs.writeFileSync(metadata!, '');

    // HEAD of a bucket says whether it exists, without reading any object (s3rver alone answers it with a listing).
    expect((await fetch(`${s3.endpoint}/${BUCKET}`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${s3.endpoint}/no-such-bucket`, { method: 'HEAD' })).status).toBe(404);
    expect(fs.readFileSync(metadata!, 'utf8')).toBe('');
    // Listing the bucket reads every object's metadata.
    const listing = await fetch(`${s3.endpoint}/${BUCKET}?list-type=2&prefix=jobs/`);
    expect(listing.status).toBe(200);
    expect(await listing.text()).toContain('<Key>jobs/j1/0/best.bin</Key>');
    expect((await fetch(`${s3.endpoint}/${BUCKET}`, { method: 'HEAD' })).status).toBe(200);
    const back = await get('jobs/j1/0/best.bin');
    expect(back.status).toBe(200);
    expect(back.body.toString()).toBe('weights');
    expect(fs.existsSync(metadata!)).toBe(false);
  });
});

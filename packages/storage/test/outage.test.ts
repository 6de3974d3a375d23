// Storage through outages of a real S3-protocol server: the server is stopped and started again on the same port
// and folder. Its own server, so the stops disturb no other test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  DependencyUnavailableError,
  findDependencyUnavailable,
  formatDuration,
  isOutageError,
  ObjectNotFoundError,
  Storage,
  throughOutage,
} from '@graft/storage';
import { startEmbeddedS3, type EmbeddedS3 } from '@graft/devservers';

describe('storage through an outage of its server', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-outage-'));
  let s3: EmbeddedS3;
  let plain: Storage;
  const settings = () => ({
    endpoint: s3.endpoint,
    bucket: 'outage-test',
    region: 'us-east-1',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    forcePathStyle: true,
  });
  const restart = async () => {
    s3 = await startEmbeddedS3({ dir, port: s3.port });
  };

  beforeAll(async () => {
    s3 = await startEmbeddedS3({ dir });
    plain = new Storage(settings());
    await plain.ensureBucket();
  });
  afterAll(async () => {
    plain?.close();
    await s3?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('classifies a stopped server as an outage, and a missing object or a bad request as not one', async () => {
    await s3.stop();
    const refused = await plain.getBuffer('any').catch((e) => e);
    await restart();
    expect(isOutageError(refused)).toBe(true);
    const missing = await plain.getBuffer('nothing/here').catch((e) => e);
    expect(missing).toBeInstanceOf(ObjectNotFoundError);
    expect(isOutageError(missing)).toBe(false);
    const badBucket = await plain.forBucket('no-such-bucket-here').getBuffer('x').catch((e) => e);
    expect(isOutageError(badBucket)).toBe(false);
    expect(isOutageError(new Error('bad input'))).toBe(false);
    expect(isOutageError(Object.assign(new Error('InternalError'), { $metadata: { httpStatusCode: 503 } }))).toBe(true);
    expect(isOutageError(new Error('wrapped', { cause: refused }))).toBe(true);
  });

  it('waits through a stop and restart: reads and writes begun while the server is away finish once it is back', async () => {
    const data = randomBytes(300_000);
    await plain.put('kept/before.bin', data);
    const waits: number[] = [];
    const backs: number[] = [];
    const patient = plain.withPatience({
      toleranceMs: 60_000,
      maxDelayMs: 500,
      onWaiting: ({ downMs }) => waits.push(downMs),
      onBack: ({ downMs }) => backs.push(downMs),
    });
    await s3.stop();
    const read = patient.getBuffer('kept/before.bin');
    const write = patient.putVerified('kept/during.bin', data);
    const listed = (async () => {
      const keys: string[] = [];
      for await (const o of patient.listObjects('kept/')) keys.push(o.key);
      return keys;
    })();
    // Restarted only once every operation has failed at least once and is waiting.
    while (waits.length < 3) await new Promise((r) => setTimeout(r, 50));
    await restart();
    expect((await read).equals(data)).toBe(true);
    await write;
    expect((await plain.getBuffer('kept/during.bin')).equals(data)).toBe(true);
    expect(await listed).toContain('kept/before.bin');
    expect(backs.length).toBeGreaterThanOrEqual(3);
  });

  it('counts a server that stops answering (SIGSTOP) as down after the socket timeout, and goes on when it answers', async () => {
    const data = randomBytes(1000);
    await plain.put('kept/hung.bin', data);
    const quick = new Storage({ ...settings(), socketTimeoutMs: 1_000 });
    let waits = 0;
    const patient = quick.withPatience({ toleranceMs: 60_000, maxDelayMs: 300, onWaiting: () => waits++ });
    s3.process.kill('SIGSTOP');
    try {
      const hung = await quick.getBuffer('kept/hung.bin').catch((e) => e);
      expect(hung.name).toBe('TimeoutError');
      expect(isOutageError(hung)).toBe(true);
      const read = patient.getBuffer('kept/hung.bin');
      while (waits < 1) await new Promise((r) => setTimeout(r, 50));
      s3.process.kill('SIGCONT');
      expect((await read).equals(data)).toBe(true);
    } finally {
      s3.process.kill('SIGCONT');
      quick.close();
    }
  });

  it('gives up after the tolerance with an error naming storage and how long it was away', async () => {
    const patient = plain.withPatience({ toleranceMs: 1_500, maxDelayMs: 300 });
    await s3.stop();
    const err = await patient.getBuffer('kept/before.bin').catch((e) => e);
    await restart();
    expect(err).toBeInstanceOf(DependencyUnavailableError);
    expect(err.code).toBe('STORAGE_UNAVAILABLE');
    expect(err.permanent).toBe(true);
    expect(err.downMs).toBeGreaterThanOrEqual(1_500);
    expect(err.message).toMatch(/^object storage was unreachable for \d+(\.\d)? s/);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(findDependencyUnavailable(new Error('wrapped', { cause: err }))).toBe(err);
  });

  it('stops waiting at once when its signal is aborted, with the abort reason', async () => {
    const ac = new AbortController();
    let waiting = false;
    const patient = plain.withPatience({ toleranceMs: 600_000, signal: ac.signal, onWaiting: () => (waiting = true) });
    await s3.stop();
    const pending = patient.getBuffer('kept/before.bin').catch((e) => e);
    while (!waiting) await new Promise((r) => setTimeout(r, 20));
    ac.abort(new Error('cancelled'));
    const err = await pending;
    await restart();
    expect(err.message).toBe('cancelled');
  });

  it('passes errors that are not outages through at once, without waiting', async () => {
    let waited = false;
    const patient = plain.withPatience({ toleranceMs: 600_000, onWaiting: () => (waited = true) });
    await expect(patient.getBuffer('kept/missing.bin')).rejects.toBeInstanceOf(ObjectNotFoundError);
    expect(await patient.exists('kept/missing.bin')).toBe(false);
    await expect(throughOutage(() => Promise.reject(new TypeError('bug')), { dependency: 'redis', toleranceMs: 600_000 })).rejects.toThrow('bug');
    expect(waited).toBe(false);
  });

  it('formats outage durations for people', () => {
    expect(formatDuration(300)).toBe('0.3 s');
    expect(formatDuration(42_000)).toBe('42 s');
    expect(formatDuration(600_000)).toBe('10 min 0 s');
  });
});

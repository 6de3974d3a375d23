// Checkpoints in a real S3-protocol server: the newest whole one is loaded, and one spoilt by a write cut short
// (an object left truncated, as s3rver leaves one it was overwriting when it stops) costs only itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Storage } from '@graft/storage';
import type { Checkpoint } from '@graft/vision';
import { jobCheckpoints } from '../src/checkpoint-store';
import { testConfig } from '../../../test/support/services';

const checkpoint = (epoch: number): Checkpoint => ({
  meta: { format: 'graft-checkpoint', phase: 'training_head', epoch, history: Array.from({ length: epoch }, (_, i) => ({ epoch: i + 1 })) } as unknown as Checkpoint['meta'],
  files: { 'weights.bin': new Uint8Array(1000 + epoch).fill(epoch), 'best.bin': new Uint8Array(500).fill(100 + epoch) },
});

describe('checkpoints in object storage', () => {
  const storage = new Storage(testConfig().s3);
  const warnings: string[] = [];
  const log = { warn: (_: object, msg: string) => warnings.push(msg) };
  beforeAll(() => storage.ensureBucket());
  afterAll(() => storage.close());

  it('loads nothing where nothing was saved, then the newest of those saved, and keeps no older files than needed', async () => {
    const prefix = 'jobs/a/checkpoint/';
    expect(await jobCheckpoints(storage, prefix, log).load()).toBeNull();
    const writer = jobCheckpoints(storage, prefix, log);
    for (const epoch of [1, 2, 3, 4]) await writer.save(checkpoint(epoch));
    const loaded = await jobCheckpoints(storage, prefix, log).load();
    expect(loaded?.meta.epoch).toBe(4);
    expect(Buffer.from(loaded!.files['weights.bin']!).equals(Buffer.from(checkpoint(4).files['weights.bin']!))).toBe(true);
    const keys: string[] = [];
    for await (const o of storage.listObjects(prefix)) keys.push(o.key.slice(prefix.length));
    expect(keys.sort()).toEqual(['2/best.bin', '2/weights.bin', '3/best.bin', '3/weights.bin', 'slot-0.json', 'slot-1.json']);
  });

  it('falls back to the previous checkpoint where the newest meta or one of its files is cut short', async () => {
    const prefix = 'jobs/b/checkpoint/';
    const writer = jobCheckpoints(storage, prefix, log);
    for (const epoch of [1, 2, 3]) await writer.save(checkpoint(epoch));
    // Checkpoint 3 (number 2, slot 0): its weights cut short.
    const weights = await storage.getBuffer(`${prefix}2/weights.bin`);
    await storage.put(`${prefix}2/weights.bin`, weights.subarray(0, 100));
    const reader = jobCheckpoints(storage, prefix, log);
    expect((await reader.load())?.meta.epoch).toBe(2);
    expect(warnings.at(-1)).toMatch(/cut short/);
    // The next checkpoint goes where the spoilt one was, never over the one just loaded.
    await reader.save(checkpoint(3));
    expect((await jobCheckpoints(storage, prefix, log).load())?.meta.epoch).toBe(3);
    // Its meta cut short: the one before is whole.
    const meta = (await storage.getBuffer(`${prefix}slot-0.json`)).toString();
    await storage.put(`${prefix}slot-0.json`, meta.slice(0, 40));
    expect((await jobCheckpoints(storage, prefix, log).load())?.meta.epoch).toBe(2);
    expect(warnings.at(-1)).toMatch(/meta cannot be read/);
  });

  it('drops every checkpoint', async () => {
    const prefix = 'jobs/c/checkpoint/';
    const store = jobCheckpoints(storage, prefix, log);
    for (const epoch of [1, 2, 3]) await store.save(checkpoint(epoch));
    await store.drop();
    expect(await jobCheckpoints(storage, prefix, log).load()).toBeNull();
    const left: string[] = [];
    for await (const o of storage.listObjects(prefix)) left.push(o.key);
    expect(left).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { ModelCache, type Loaded } from '../src/model-cache';

/** A cache whose models are named strings of a given size, recording loads and disposals. */
function setup(maxBytes: number) {
  const loads: string[] = [];
  const disposed: string[] = [];
  const evicted: string[] = [];
  const cache = new ModelCache<string>({ maxBytes, onEvict: (k) => evicted.push(k) });
  const loader = (key: string, bytes: number) => async (): Promise<Loaded<string>> => {
    loads.push(key);
    await new Promise((r) => setTimeout(r, 1));
    return { value: `model ${key}`, bytes, dispose: () => void disposed.push(key) };
  };
  const use = (key: string, bytes: number, fn: (v: string) => Promise<unknown> = async (v) => v) => cache.use(key, loader(key, bytes), fn);
  return { cache, loads, disposed, evicted, use };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('ModelCache', () => {
  it('loads a model once for concurrent callers and keeps it', async () => {
    const { cache, loads, use } = setup(1000);
    const values = await Promise.all([use('a', 10), use('a', 10), use('a', 10)]);
    expect(values).toEqual(['model a', 'model a', 'model a']);
    await use('a', 10);
    expect(loads).toEqual(['a']);
    expect(cache.bytes).toBe(10);
  });

  it('evicts the least recently used models once the loaded ones exceed the byte bound, and disposes them', async () => {
    const { cache, disposed, evicted, use, loads } = setup(100);
    await use('a', 40);
    await use('b', 40);
    await use('a', 40); // a is now more recent than b
    await use('c', 40); // 120 > 100: b goes
    await tick();
    expect(evicted).toEqual(['b']);
    expect(disposed).toEqual(['b']);
    expect(cache.keys()).toEqual(['a', 'c']);
    expect(cache.bytes).toBe(80);
    await use('d', 70); // 150: a goes, then c
    await tick();
    expect(evicted).toEqual(['b', 'a', 'c']);
    expect(cache.keys()).toEqual(['d']);
    await use('b', 40); // 110: d goes, b reloaded
    expect(loads).toEqual(['a', 'b', 'c', 'd', 'b']);
  });

  it('keeps a model bigger than the whole bound while it is the one asked for', async () => {
    const { cache, use } = setup(50);
    await use('small', 10);
    await use('huge', 80);
    expect(cache.keys()).toEqual(['huge']);
  });

  it('disposes an evicted model only after the call using it has finished', async () => {
    const { cache, disposed, use } = setup(100);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const running = use('a', 60, async (v) => {
      await held;
      return v;
    });
    await tick();
    await use('b', 60); // a is evicted while in use
    await tick();
    expect(cache.keys()).toEqual(['b']);
    expect(disposed).toEqual([]);
    release();
    await expect(running).resolves.toBe('model a');
    await tick();
    expect(disposed).toEqual(['a']);
  });

  it('does not keep a failed load, so the next call tries again', async () => {
    const cache = new ModelCache<string>({ maxBytes: 100 });
    let calls = 0;
    const load = async (): Promise<Loaded<string>> => {
      calls++;
      if (calls === 1) throw new Error('S3 down');
      return { value: 'ok', bytes: 1, dispose() {} };
    };
    await expect(cache.use('a', load, async (v) => v)).rejects.toThrow('S3 down');
    expect(cache.has('a')).toBe(false);
    await expect(cache.use('a', load, async (v) => v)).resolves.toBe('ok');
  });

  it('forgets and closes: models are disposed, and a closed cache refuses work', async () => {
    const { cache, disposed, use } = setup(100);
    await use('a', 10);
    await use('b', 10);
    cache.forget('a');
    await tick();
    expect(disposed).toEqual(['a']);
    await cache.close();
    await cache.close();
    await tick();
    expect(disposed).toEqual(['a', 'b']);
    await expect(use('c', 1)).rejects.toThrow(/closed/);
  });
});

// Loaded models kept by key in a cache bounded by their size in bytes, least recently used evicted first. A model
// is loaded once however many callers ask for it at the same time; a failed load is not kept. An evicted or
// forgotten model is disposed once the last caller using it has finished, never under a running prediction.

export interface Loaded<V> {
  value: V;
  /** What the model holds in memory, as counted against the cache's bound. */
  bytes: number;
  dispose(): void | Promise<void>;
}

interface Entry<V> {
  key: string;
  loading: Promise<Loaded<V>>;
  loaded: Loaded<V> | null;
  lastUsed: number;
  users: number;
  /** Out of the cache; disposed when `users` reaches 0. */
  dropped: boolean;
  disposed: boolean;
}

export interface ModelCacheOptions {
  maxBytes: number;
  /** Called after a model is disposed because the cache was over its bound. */
  onEvict?(key: string, bytes: number): void;
}

export class ModelCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private tick = 0;
  private closed = false;

  constructor(private readonly opts: ModelCacheOptions) {
    if (!(opts.maxBytes > 0)) throw new RangeError(`maxBytes must be positive, got ${opts.maxBytes}`);
  }

  /** Bytes held by the models loaded now. */
  get bytes(): number {
    let total = 0;
    for (const e of this.entries.values()) total += e.loaded?.bytes ?? 0;
    return total;
  }

  /** Keys of the models in the cache (loaded or loading), least recently used first. */
  keys(): string[] {
    return [...this.entries.values()].sort((a, b) => a.lastUsed - b.lastUsed).map((e) => e.key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /**
   * Runs fn with the model under key, loading it with `load` when it is not cached. The model is not disposed
   * while fn runs, even if it is evicted meanwhile. fn's second argument says whether this call waited for the
   * model to load.
   */
  async use<R>(key: string, load: () => Promise<Loaded<V>>, fn: (value: V, waitedForLoad: boolean) => Promise<R>): Promise<R> {
    if (this.closed) throw new Error('the model cache is closed');
    let entry = this.entries.get(key);
    if (!entry) {
      const e: Entry<V> = { key, loading: undefined as never, loaded: null, lastUsed: ++this.tick, users: 0, dropped: false, disposed: false };
      e.loading = (async () => load())().then(
        (l) => {
          e.loaded = l;
          if (e.dropped) this.release(e);
          else this.evict(e);
          return l;
        },
        (err) => {
          if (this.entries.get(key) === e) this.entries.delete(key);
          throw err;
        },
      );
      this.entries.set(key, e);
      entry = e;
    }
    entry.lastUsed = ++this.tick;
    entry.users++;
    const waited = entry.loaded === null;
    try {
      const l = await entry.loading;
      return await fn(l.value, waited);
    } finally {
      entry.users--;
      this.release(entry);
    }
  }

  /** Drops the model under key; it is disposed once nobody uses it. */
  forget(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.drop(e);
  }

  /** Drops every model; later `use` calls reject. May be called more than once. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.entries.values()];
    for (const e of all) this.drop(e);
    await Promise.allSettled(all.map((e) => e.loading));
  }

  private drop(e: Entry<V>): void {
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
    e.dropped = true;
    this.release(e);
  }

  private release(e: Entry<V>): void {
    if (!e.dropped || e.users > 0 || !e.loaded || e.disposed) return;
    e.disposed = true;
    void Promise.resolve()
      .then(() => e.loaded!.dispose())
      .catch(() => {});
  }

  /** Evicts least recently used models (never `keep`) until the loaded ones fit. */
  private evict(keep: Entry<V>): void {
    let total = this.bytes;
    if (total <= this.opts.maxBytes) return;
    const byAge = [...this.entries.values()].filter((e) => e !== keep && e.loaded).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of byAge) {
      if (total <= this.opts.maxBytes) break;
      total -= e.loaded!.bytes;
      this.drop(e);
      this.opts.onEvict?.(e.key, e.loaded!.bytes);
    }
  }
}

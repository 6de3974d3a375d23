// Watches the worker's dependencies (object storage, Redis) and tells when one goes down or comes back, so the
// worker stops taking jobs while either is down. Redis is followed through its connection's events, storage by a
// request every `intervalMs`.
import type { Redis } from '@graft/queue';
import type { Dependency, Storage } from '@graft/storage';

export type DependencyState = Record<Dependency, { up: boolean; since: number; error: string | null }>;

export interface DependencyMonitorOptions {
  redis: Redis;
  storage: Storage;
  intervalMs?: number;
  /** How long a storage request may take before storage counts as down. */
  timeoutMs?: number;
  /** Called on every change, with the dependency that changed, the state of all, and how long it was as before. */
  onChange(dependency: Dependency, state: DependencyState, previousForMs: number): void;
}

const withTimeout = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref())]);

export class DependencyMonitor {
  readonly state: DependencyState;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly onRedisDown = () => this.set('redis', false, 'connection lost');
  private readonly onRedisUp = () => this.set('redis', true, null);

  constructor(private readonly opts: DependencyMonitorOptions) {
    const now = Date.now();
    this.state = {
      storage: { up: true, since: now, error: null },
      redis: { up: true, since: now, error: null },
    };
    opts.redis.on('close', this.onRedisDown);
    opts.redis.on('ready', this.onRedisUp);
  }

  /** Whether every dependency is up. */
  get allUp(): boolean {
    return this.state.storage.up && this.state.redis.up;
  }

  /** Checks storage now, then every interval. */
  start(): void {
    const tick = async () => {
      await this.checkStorage();
      if (!this.stopped) this.timer = setTimeout(tick, this.opts.intervalMs ?? 2_000);
    };
    void tick();
  }

  async checkStorage(): Promise<void> {
    try {
      await withTimeout(this.opts.storage.ping(), this.opts.timeoutMs ?? 3_000);
      this.set('storage', true, null);
    } catch (err) {
      this.set('storage', false, (err as Error)?.message || (err as Error)?.name || String(err));
    }
  }

  /** May be called more than once. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.opts.redis.off('close', this.onRedisDown);
    this.opts.redis.off('ready', this.onRedisUp);
  }

  private set(dependency: Dependency, up: boolean, error: string | null): void {
    const s = this.state[dependency];
    if (s.up === up || this.stopped) return;
    const now = Date.now();
    this.state[dependency] = { up, since: now, error };
    this.opts.onChange(dependency, this.state, now - s.since);
  }
}

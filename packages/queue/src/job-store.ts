// The job records that the API serves: one Redis hash per job plus a list of history rows,
// a per-tenant index, and a pub/sub channel per job for live events.
import type { Redis } from 'ioredis';
import { TERMINAL_STATES, type HistoryRow, type JobEvent, type JobRecord, type JobState } from '@graft/contract';

export { TERMINAL_STATES, type HistoryRow, type JobEvent, type JobRecord, type JobState };

/** A new job's record: queued, nothing run yet. */
export function queuedJobRecord(job: Pick<JobRecord, 'id' | 'tenant' | 'datasetId' | 'config' | 'epochs'>, now = new Date()): JobRecord {
  return {
    ...job,
    state: 'queued',
    phase: null,
    progress: 0,
    epoch: null,
    etaSeconds: null,
    history: [],
    test: null,
    validation: null,
    modelId: null,
    error: null,
    attempts: 0,
    backend: null,
    dropped: null,
    refit: null,
    cancelRequested: false,
    createdAt: now.toISOString(),
    startedAt: null,
    finishedAt: null,
  };
}

export class JobStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key = (id: string) => `${this.prefix}:job:${id}`;
  private historyKey = (id: string) => `${this.prefix}:job:${id}:history`;
  private tenantKey = (t: string) => `${this.prefix}:tenant:${t}:jobs`;
  private datasetKey = (t: string, ds: string) => `${this.prefix}:tenant:${t}:dataset:${ds}:jobs`;
  eventsChannel = (id: string) => `${this.prefix}:events:${id}`;
  get cancelChannel() {
    return `${this.prefix}:cancel`;
  }

  async create(rec: JobRecord): Promise<void> {
    const t = Date.parse(rec.createdAt);
    await this.redis
      .multi()
      .hset(this.key(rec.id), this.encode(rec))
      .zadd(this.tenantKey(rec.tenant), t, rec.id)
      .sadd(this.datasetKey(rec.tenant, rec.datasetId), rec.id)
      .exec();
  }

  async get(id: string): Promise<JobRecord | null> {
    const [[, h], [, rows]] = (await this.redis.multi().hgetall(this.key(id)).lrange(this.historyKey(id), 0, -1).exec())! as [
      [unknown, Record<string, string>],
      [unknown, string[]],
    ];
    if (!h || !h.id) return null;
    return this.decode(h, rows);
  }

  /** Whether a cancel of the job was asked for (one field of its record). */
  async cancelRequested(id: string): Promise<boolean> {
    return (await this.redis.hget(this.key(id), 'cancelRequested')) === 'true';
  }

  /** The tenant's job, or null where it does not exist or belongs to another tenant. */
  async getForTenant(tenant: string, id: string): Promise<JobRecord | null> {
    const rec = await this.get(id);
    return rec && rec.tenant === tenant ? rec : null;
  }

  async list(tenant: string, opts: { state?: JobState; limit: number; offset: number }): Promise<{ items: JobRecord[]; total: number }> {
    const ids = await this.redis.zrevrange(this.tenantKey(tenant), 0, -1);
    const recs: JobRecord[] = [];
    for (const id of ids) {
      const r = await this.get(id);
      if (r && (!opts.state || r.state === opts.state)) recs.push(r);
    }
    return { items: recs.slice(opts.offset, opts.offset + opts.limit), total: recs.length };
  }

  /** How many of the tenant's jobs are queued or running (one pipelined read of every job's state). */
  async countActive(tenant: string): Promise<number> {
    const ids = await this.redis.zrange(this.tenantKey(tenant), 0, -1);
    if (!ids.length) return 0;
    const p = this.redis.pipeline();
    for (const id of ids) p.hget(this.key(id), 'state');
    const states = (await p.exec()) ?? [];
    return states.filter(([, s]) => s === '"queued"' || s === '"running"').length;
  }

  /**
   * Deletes the tenant's oldest finished job records beyond the newest `keep` records, so that a tenant's
   * records cannot grow Redis without bound. Queued and running jobs are never deleted. Answers how many went.
   */
  async trimFinished(tenant: string, keep: number): Promise<number> {
    const excess = (await this.redis.zcard(this.tenantKey(tenant))) - keep;
    if (excess <= 0) return 0;
    const oldest = await this.redis.zrange(this.tenantKey(tenant), 0, excess - 1);
    let removed = 0;
    for (const id of oldest) {
      const rec = await this.get(id);
      if (!rec) {
        await this.redis.zrem(this.tenantKey(tenant), id);
        removed++;
      } else if (TERMINAL_STATES.includes(rec.state)) {
        await this.delete(rec);
        removed++;
      }
    }
    return removed;
  }

  /** Ids of the tenant's jobs that use a dataset. */
  async jobsOfDataset(tenant: string, datasetId: string): Promise<string[]> {
    return this.redis.smembers(this.datasetKey(tenant, datasetId));
  }

  async update(id: string, patch: Partial<JobRecord>, event?: JobEvent['type']): Promise<void> {
    const enc = this.encode(patch);
    if (Object.keys(enc).length) await this.redis.hset(this.key(id), enc);
    if (event) await this.publish(id, { type: event, data: patch } as JobEvent);
  }

  /** Sets the state only where the job is not yet in a terminal state; answers whether it did. */
  async transition(id: string, patch: Partial<JobRecord> & { state: JobState }): Promise<boolean> {
    const script = `
      local s = redis.call('HGET', KEYS[1], 'state')
      if not s then return 0 end
      if s == '"succeeded"' or s == '"failed"' or s == '"cancelled"' then return 0 end
      for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
      return 1`;
    const args = Object.entries(this.encode(patch)).flat();
    const ok = (await this.redis.eval(script, 1, this.key(id), ...args)) === 1;
    if (ok) await this.publish(id, { type: 'state', data: patch });
    return ok;
  }

  /**
   * Appends a history row. Idempotent for the row just appended: a command that Redis applied but whose answer was
   * lost in an outage is sent again by the client when Redis is back, and must not leave the epoch twice.
   */
  async appendHistory(id: string, row: HistoryRow): Promise<void> {
    const script = `
      if redis.call('LINDEX', KEYS[1], -1) == ARGV[1] then return 0 end
      return redis.call('RPUSH', KEYS[1], ARGV[1])`;
    await this.redis.eval(script, 1, this.historyKey(id), JSON.stringify(row));
    await this.publish(id, { type: 'epoch', data: row });
  }

  /** Replaces the history rows (a resumed attempt keeps exactly the rows its checkpoint holds). */
  async replaceHistory(id: string, rows: HistoryRow[]): Promise<void> {
    const m = this.redis.multi().del(this.historyKey(id));
    if (rows.length) m.rpush(this.historyKey(id), ...rows.map((r) => JSON.stringify(r)));
    await m.exec();
  }

  /** Counts one more attempt at running the job and answers its number. */
  async nextAttempt(id: string): Promise<number> {
    return this.redis.hincrby(this.key(id), 'attempts', 1);
  }

  async publish(id: string, ev: JobEvent): Promise<void> {
    await this.redis.publish(this.eventsChannel(id), JSON.stringify(ev));
  }

  async delete(rec: JobRecord): Promise<void> {
    await this.redis
      .multi()
      .del(this.key(rec.id), this.historyKey(rec.id))
      .zrem(this.tenantKey(rec.tenant), rec.id)
      .srem(this.datasetKey(rec.tenant, rec.datasetId), rec.id)
      .exec();
  }

  private encode(rec: Partial<JobRecord>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(rec)) {
      if (k === 'history' || v === undefined) continue;
      out[k] = JSON.stringify(v);
    }
    return out;
  }

  private decode(h: Record<string, string>, rows: string[]): JobRecord {
    const r: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(h)) r[k] = JSON.parse(v);
    r.history = rows.map((x) => JSON.parse(x));
    return upgradeRecord(r) as unknown as JobRecord;
  }
}

/**
 * A record as stored by an earlier version, brought to today's shape: a job accepted before label issues existed
 * did not look for them (`config.labelIssues` false); nothing else is filled in.
 */
function upgradeRecord(r: Record<string, unknown>): Record<string, unknown> {
  const config = r.config as Record<string, unknown> | undefined;
  if (config && typeof config === 'object' && !('labelIssues' in config)) r.config = { ...config, labelIssues: false };
  return r;
}

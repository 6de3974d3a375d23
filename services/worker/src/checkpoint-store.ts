// A job's checkpoints in storage, written so that a write cut short never costs the last whole checkpoint.
//
// Under the job's checkpoint prefix:
//   <n>/files/<name>   the files of checkpoint number n (weights.bin, best.bin)
//   slot-<n % 2>.json  its meta: the vision checkpoint's meta, plus `seq` (n) and `bytes` (the size of each file)
// Checkpoint n is written under a fresh number, its files read back whole, and its slot written last, so the other
// slot still names checkpoint n - 1 with its files untouched. A storage server that stops in the middle of a write
// can leave that object cut short (s3rver truncates an object it is overwriting); that spoils one checkpoint at
// most. Loading takes the newest checkpoint whose meta and files read back whole.
import { ObjectNotFoundError, type Storage } from '@graft/storage';
import type { Checkpoint } from '@graft/vision';

type StoredMeta = Checkpoint['meta'] & { seq: number; bytes: Record<string, number> };

export interface CheckpointLog {
  warn(obj: object, msg: string): void;
}

export class CheckpointStore {
  /** Number of the checkpoint loaded or last written; the next is written under the next number. */
  private seq = -1;

  constructor(
    private readonly storage: Storage,
    private readonly prefix: string,
    private readonly log: CheckpointLog = { warn: () => {} },
  ) {}

  private slot = (seq: number) => `${this.prefix}slot-${seq % 2}.json`;
  private file = (seq: number, name: string) => `${this.prefix}${seq}/files/${name}`;

  /** The newest whole checkpoint, or null where there is none. Outage errors are passed on, not taken for damage. */
  async load(): Promise<Checkpoint | null> {
    const metas: StoredMeta[] = [];
    for (const s of [0, 1]) {
      const meta = await this.readMeta(s);
      if (meta) metas.push(meta);
    }
    metas.sort((a, b) => b.seq - a.seq);
    for (const meta of metas) {
      const files = await this.readFiles(meta);
      if (files) {
        this.seq = meta.seq;
        return { meta, files };
      }
    }
    return null;
  }

  async save(c: Checkpoint): Promise<void> {
    const seq = this.seq + 1;
    const names = Object.keys(c.files);
    await Promise.all(names.map((n) => this.storage.putVerified(this.file(seq, n), c.files[n]!)));
    const bytes = Object.fromEntries(names.map((n) => [n, c.files[n]!.byteLength]));
    const meta: StoredMeta = { ...c.meta, seq, bytes };
    await this.storage.putVerified(this.slot(seq), JSON.stringify(meta), 'application/json');
    this.seq = seq;
    // The files of the checkpoint this slot named before are no longer named by anything.
    if (seq >= 2) await this.storage.deletePrefix(`${this.prefix}${seq - 2}/`).catch(() => {});
  }

  /** Deletes every checkpoint, the metas first (a deletion cut short leaves no meta naming files that are gone). */
  async drop(): Promise<void> {
    await this.storage.deleteKeys([`${this.prefix}slot-0.json`, `${this.prefix}slot-1.json`]);
    await this.storage.deletePrefix(this.prefix);
  }

  private async readMeta(s: number): Promise<StoredMeta | null> {
    const key = `${this.prefix}slot-${s}.json`;
    try {
      const meta = await this.storage.getJsonOrNull<StoredMeta>(key);
      if (!meta) return null;
      if (typeof meta.seq !== 'number' || typeof meta.bytes !== 'object' || meta.seq % 2 !== s) throw new Error('not a checkpoint meta');
      return meta;
    } catch (err) {
      if (!(err instanceof SyntaxError) && (err as Error).message !== 'not a checkpoint meta') throw err;
      this.log.warn({ key, err: (err as Error).message }, 'a checkpoint meta cannot be read: the other checkpoint is used');
      return null;
    }
  }

  private async readFiles(meta: StoredMeta): Promise<Record<string, Uint8Array> | null> {
    const files: Record<string, Uint8Array> = {};
    for (const [name, size] of Object.entries(meta.bytes)) {
      try {
        files[name] = await this.storage.getBuffer(this.file(meta.seq, name));
      } catch (err) {
        if (!(err instanceof ObjectNotFoundError)) throw err;
      }
      if (files[name]?.byteLength !== size) {
        this.log.warn({ seq: meta.seq, file: name }, 'a checkpoint file is missing or cut short: an older checkpoint is used');
        return null;
      }
    }
    return files;
  }
}

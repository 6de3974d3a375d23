// Checkpoints: after every epoch, the weights being trained (current and best) and where the run stands, so a
// new attempt continues at the next epoch. Self-describing: `meta` is JSON naming every weight with its shape,
// `files` holds their float32 values. Checkpoints keeps them in a CheckpointStore (the worker's is an S3
// prefix): this is the one stored format of a checkpoint.
import type * as tf from '@tensorflow/tfjs';
import type { HistoryRow, PhaseState } from './fit';

export const CHECKPOINT_FORMAT = 'graft-checkpoint';
export const CHECKPOINT_VERSION = 2;

export interface WeightEntry {
  name: string;
  shape: number[];
}

export interface CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  method: string;
  backbone: string | null;
  inputSize: number;
  labels: string[];
  /** The phase the weights belong to, and the epochs of it finished. */
  phase: HistoryRow['phase'];
  epoch: number;
  bestValLoss: number | null;
  bestEpoch: number;
  wait: number;
  stopped: boolean;
  history: HistoryRow[];
  /** The weights in `weights.bin` (and `best.bin` where present), in order. */
  weights: WeightEntry[];
  hasBest: boolean;
  createdAt: string;
  [key: string]: unknown;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  files: Record<string, Uint8Array>;
}

export const CHECKPOINT_FILES = { weights: 'weights.bin', best: 'best.bin' } as const;

function pack(values: Float32Array[]): Uint8Array {
  const total = values.reduce((a, v) => a + v.length, 0);
  const out = new Float32Array(total);
  let off = 0;
  for (const v of values) {
    out.set(v, off);
    off += v.length;
  }
  return new Uint8Array(out.buffer);
}

function unpack(bytes: Uint8Array, entries: WeightEntry[]): Float32Array[] {
  const copy = new Uint8Array(bytes); // aligned copy
  const all = new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  const out: Float32Array[] = [];
  let off = 0;
  for (const e of entries) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (off + n > all.length) throw new Error(`checkpoint weights end before '${e.name}'`);
    out.push(all.slice(off, off + n));
    off += n;
  }
  if (off !== all.length) throw new Error(`checkpoint weights hold ${all.length} values, the manifest names ${off}`);
  return out;
}

/** Name of a weight that is stable across loads of the same model (`layer/kernel`). */
export function weightName(v: tf.LayerVariable): string {
  return v.originalName;
}

export function makeCheckpoint(args: {
  method: string;
  backbone: string | null;
  inputSize: number;
  labels: string[];
  phase: HistoryRow['phase'];
  state: PhaseState;
  history: HistoryRow[];
  variables: tf.LayerVariable[];
  current: Float32Array[];
  extra?: Record<string, unknown>;
}): Checkpoint {
  const { state } = args;
  const meta: CheckpointMeta = {
    ...args.extra,
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    method: args.method,
    backbone: args.backbone,
    inputSize: args.inputSize,
    labels: [...args.labels],
    phase: args.phase,
    epoch: state.epoch,
    bestValLoss: state.bestValLoss,
    bestEpoch: state.bestEpoch,
    wait: state.wait,
    stopped: state.stopped,
    history: args.history.map((r) => ({ ...r })),
    weights: args.variables.map((v) => ({ name: weightName(v), shape: [...v.shape] as number[] })),
    hasBest: state.best !== null,
    createdAt: new Date().toISOString(),
  };
  const files: Record<string, Uint8Array> = { [CHECKPOINT_FILES.weights]: pack(args.current) };
  if (state.best) files[CHECKPOINT_FILES.best] = pack(state.best);
  return { meta, files };
}

/**
 * The checkpoint's current and best weights in the order of `variables`, matched by name and shape. Throws
 * where the checkpoint does not hold exactly these weights.
 */
export function checkpointWeights(c: Checkpoint, variables: tf.LayerVariable[]): { current: Float32Array[]; best: Float32Array[] | null } {
  const entries = c.meta.weights;
  const index = new Map(entries.map((e, i) => [e.name, i]));
  const order = variables.map((v) => {
    const i = index.get(weightName(v));
    if (i === undefined) throw new Error(`checkpoint has no weight '${weightName(v)}'`);
    if (entries[i]!.shape.join(',') !== v.shape.join(',')) {
      throw new Error(`checkpoint weight '${weightName(v)}' has shape [${entries[i]!.shape}], the model [${v.shape}]`);
    }
    return i;
  });
  if (order.length !== entries.length) throw new Error(`checkpoint holds ${entries.length} weights, the model trains ${order.length}`);
  const weights = c.files[CHECKPOINT_FILES.weights];
  if (!weights) throw new Error(`checkpoint has no ${CHECKPOINT_FILES.weights}`);
  const current = unpack(weights, entries);
  const bestBytes = c.meta.hasBest ? c.files[CHECKPOINT_FILES.best] : undefined;
  if (c.meta.hasBest && !bestBytes) throw new Error(`checkpoint has no ${CHECKPOINT_FILES.best}`);
  const best = bestBytes ? unpack(bestBytes, entries) : null;
  return { current: order.map((i) => current[i]!), best: best ? order.map((i) => best[i]!) : null };
}

/** The phase state a checkpoint records (with its best weights in the order of `variables`). */
export function checkpointState(c: Checkpoint, best: Float32Array[] | null): PhaseState {
  return {
    epoch: c.meta.epoch,
    bestValLoss: c.meta.bestValLoss,
    bestEpoch: c.meta.bestEpoch,
    wait: c.meta.wait,
    stopped: c.meta.stopped,
    best,
  };
}

/**
 * Where checkpoints are kept: files by name (an S3 prefix, a folder, a map). `read` gives null for a file that is
 * not there and throws for a store that cannot be reached; `removeFolder` removes every file whose name starts
 * with the string given.
 */
export interface CheckpointStore {
  read(name: string): Promise<Uint8Array | null>;
  write(name: string, bytes: Uint8Array): Promise<void>;
  removeFolder(folder: string): Promise<void>;
}

export interface CheckpointLog {
  warn(obj: object, msg: string): void;
}

/** What a slot holds: the meta, the checkpoint's number and the size of each of its files. */
type StoredMeta = CheckpointMeta & { seq: number; bytes: Record<string, number> };

const slotName = (seq: number) => `slot-${seq % 2}.json`;
const fileName = (seq: number, name: string) => `${seq}/${name}`;

/**
 * A job's checkpoints in a store, written so that a write cut short never costs the last whole checkpoint:
 *   <n>/<file>          the weight files of checkpoint number n (weights.bin, best.bin)
 *   slot-<n % 2>.json   its meta, with n and the size of each file
 * Checkpoint n is written under a fresh number and its slot last, so the other slot still names checkpoint n - 1
 * with its files untouched. A storage server stopped in the middle of a write can leave that object cut short
 * (s3rver truncates an object it is overwriting); that spoils one checkpoint at most. `load` takes the newest
 * checkpoint whose meta and files read back whole; the next `save` goes to the slot after it, never over it.
 */
export class Checkpoints {
  /** Number of the checkpoint loaded or last written. */
  private seq = -1;

  constructor(
    private readonly store: CheckpointStore,
    private readonly log: CheckpointLog = { warn: () => {} },
  ) {}

  /** The newest whole checkpoint, or null where there is none. Errors of the store are passed on, not taken for damage. */
  async load(): Promise<Checkpoint | null> {
    const metas: StoredMeta[] = [];
    for (const s of [0, 1]) {
      const meta = await this.readMeta(s);
      if (meta) metas.push(meta);
    }
    metas.sort((a, b) => b.seq - a.seq);
    for (const stored of metas) {
      const files = await this.readFiles(stored);
      if (files) {
        this.seq = stored.seq;
        const { seq: _seq, bytes: _bytes, ...meta } = stored;
        return { meta: meta as CheckpointMeta, files };
      }
    }
    return null;
  }

  async save(c: Checkpoint): Promise<void> {
    const seq = this.seq + 1;
    const names = Object.keys(c.files);
    await Promise.all(names.map((name) => this.store.write(fileName(seq, name), c.files[name]!)));
    const meta: StoredMeta = { ...c.meta, seq, bytes: Object.fromEntries(names.map((n) => [n, c.files[n]!.byteLength])) };
    await this.store.write(slotName(seq), new Uint8Array(Buffer.from(JSON.stringify(meta))));
    this.seq = seq;
    // The files of the checkpoint this slot named before are named by nothing now.
    if (seq >= 2) await this.store.removeFolder(`${seq - 2}/`).catch(() => {});
  }

  /** Removes every checkpoint, the metas first (a removal cut short leaves no meta naming files that are gone). */
  async drop(): Promise<void> {
    await this.store.removeFolder('slot-');
    await this.store.removeFolder('');
    this.seq = -1;
  }

  private async readMeta(s: number): Promise<StoredMeta | null> {
    const name = `slot-${s}.json`;
    const bytes = await this.store.read(name);
    if (!bytes) return null;
    try {
      const meta = JSON.parse(Buffer.from(bytes).toString('utf8')) as StoredMeta;
      if (meta.format !== CHECKPOINT_FORMAT) throw new Error(`not a graft checkpoint (format ${String(meta.format)})`);
      if (typeof meta.seq !== 'number' || meta.seq % 2 !== s || typeof meta.bytes !== 'object') throw new Error('not a checkpoint meta');
      return meta;
    } catch (err) {
      this.log.warn({ name, err: (err as Error).message }, 'a checkpoint meta cannot be read: the other checkpoint is used');
      return null;
    }
  }

  private async readFiles(meta: StoredMeta): Promise<Record<string, Uint8Array> | null> {
    const files: Record<string, Uint8Array> = {};
    for (const [name, size] of Object.entries(meta.bytes)) {
      const bytes = await this.store.read(fileName(meta.seq, name));
      if (bytes?.byteLength !== size) {
        this.log.warn({ seq: meta.seq, file: name }, 'a checkpoint file is missing or cut short: an older checkpoint is used');
        return null;
      }
      files[name] = bytes;
    }
    return files;
  }
}

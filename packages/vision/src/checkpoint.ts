// Checkpoints: after every epoch, the weights being trained (current and best) and where the run stands, so a
// new attempt continues at the next epoch. Self-describing: `meta` is JSON naming every weight with its shape,
// `files` holds their float32 values. saveCheckpoint/loadCheckpoint keep one in a CheckpointStore (the worker's
// is an S3 prefix): this is the one stored format of a checkpoint.
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

export const CHECKPOINT_FILES = { meta: 'checkpoint.json', weights: 'weights.bin', best: 'best.bin' } as const;

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
 * not there; `removeFolder` removes every file whose name starts with the folder given.
 */
export interface CheckpointStore {
  read(name: string): Promise<Uint8Array | null>;
  write(name: string, bytes: Uint8Array): Promise<void>;
  removeFolder(folder: string): Promise<void>;
}

/** What checkpoint.json holds: the meta and the folder of the weight files it names. */
type StoredMeta = CheckpointMeta & { folder: string };

/**
 * Stores a checkpoint, replacing the one there: its weight files in a folder of their own (`<phase>-<epoch>/`),
 * then `checkpoint.json` naming that folder, then the folder of the checkpoint replaced is removed. A checkpoint
 * is complete once its checkpoint.json is written, and a checkpoint.json never names files of another epoch, so
 * a run stopped at any point leaves a whole checkpoint (the new one or the one before).
 */
export async function saveCheckpoint(store: CheckpointStore, c: Checkpoint): Promise<void> {
  const previous = await readStoredMeta(store).catch(() => null);
  const folder = `${c.meta.phase}-${c.meta.epoch}/`;
  for (const [name, bytes] of Object.entries(c.files)) await store.write(`${folder}${name}`, bytes);
  const meta: StoredMeta = { ...c.meta, folder };
  await store.write(CHECKPOINT_FILES.meta, new Uint8Array(Buffer.from(JSON.stringify(meta))));
  if (previous && previous.folder !== folder) await store.removeFolder(previous.folder);
}

/** The checkpoint stored by saveCheckpoint; null where there is none. Throws where it is not whole. */
export async function loadCheckpoint(store: CheckpointStore): Promise<Checkpoint | null> {
  const stored = await readStoredMeta(store);
  if (!stored) return null;
  const { folder, ...meta } = stored;
  const names = [CHECKPOINT_FILES.weights, ...(meta.hasBest ? [CHECKPOINT_FILES.best] : [])];
  const files: Record<string, Uint8Array> = {};
  for (const name of names) {
    const bytes = await store.read(`${folder}${name}`);
    if (!bytes) throw new Error(`checkpoint ${folder} has no ${name}`);
    files[name] = bytes;
  }
  return { meta: meta as CheckpointMeta, files };
}

async function readStoredMeta(store: CheckpointStore): Promise<StoredMeta | null> {
  const bytes = await store.read(CHECKPOINT_FILES.meta);
  if (!bytes) return null;
  const meta = JSON.parse(Buffer.from(bytes).toString('utf8')) as StoredMeta;
  if (meta.format !== CHECKPOINT_FORMAT) throw new Error(`not a graft checkpoint (format ${String(meta.format)})`);
  if (typeof meta.folder !== 'string' || !/^[a-z_]+-\d+\/$/.test(meta.folder)) throw new Error(`checkpoint.json names no weight folder`);
  return meta;
}

// Checkpoints: after every epoch, the weights being trained (current and best) and where the run stands, so a
// new attempt continues at the next epoch. Self-describing: `meta` is JSON naming every weight with its shape,
// `files` holds their float32 values; checkpointToFiles/checkpointFromFiles turn it into plain files.
import type * as tf from '@tensorflow/tfjs';
import type { HistoryRow, PhaseState } from './fit';

export const CHECKPOINT_FORMAT = 'graft-checkpoint';
export const CHECKPOINT_VERSION = 1;

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

/** All of a checkpoint as files: `checkpoint.json` plus its weight files. */
export function checkpointToFiles(c: Checkpoint): Record<string, Uint8Array> {
  return { ...c.files, [CHECKPOINT_FILES.meta]: new Uint8Array(Buffer.from(JSON.stringify(c.meta))) };
}

export function checkpointFromFiles(files: Record<string, Uint8Array>): Checkpoint {
  const metaBytes = files[CHECKPOINT_FILES.meta];
  if (!metaBytes) throw new Error(`checkpoint has no ${CHECKPOINT_FILES.meta}`);
  const meta = JSON.parse(Buffer.from(metaBytes).toString('utf8')) as CheckpointMeta;
  if (meta.format !== CHECKPOINT_FORMAT) throw new Error(`not a graft checkpoint (format ${String(meta.format)})`);
  const rest = { ...files };
  delete rest[CHECKPOINT_FILES.meta];
  return { meta, files: rest };
}

// Out-of-distribution scores: how far an image's features lie from the training images' features.
//
// The features are the classifier's pooled backbone vector (the head's input), scaled to unit length. At training
// time a bank of training images' features is saved beside the model (OOD_BANK_FILE), and the threshold is set so
// that OOD_VALIDATION_SHARE of the validation images score above it. An image's score is the mean Euclidean
// distance to its OOD_NEIGHBOURS nearest bank vectors: 0 for a training image itself, up to 2 for a vector
// opposite to all of them. Unlike the top probability, it rises for an image of none of the classes even when the
// model is sure of one of them.
//
// To serve it in one pass, the classifier's graph gets one output that is the class probabilities, then the
// features, then their dot products with every bank vector (withOodOutput: the bank becomes the kernel of a
// dense layer, so ONNX Runtime does the heavy part); the score needs only the features' length and the k largest
// dot products (scoreFromDots).

/** File of the feature bank among the model's artifacts: bankSize x featureSize float32, little-endian, unit rows. */
import type { OodResult } from '@graft/contract';
export const OOD_BANK_FILE = 'ood-features.bin';
/** Neighbours an image's score averages over. */
export const OOD_NEIGHBOURS = 5;
/** Share of the validation images above the threshold. */
export const OOD_VALIDATION_SHARE = 0.05;

/** How a model scores unknown inputs: the `outOfDistribution` of graft.json. */
export interface OodManifest {
  method: 'knn';
  neighbours: number;
  /** Layer of the classifier whose output is the feature vector. */
  featureLayer: string;
  featureSize: number;
  bankFile: string;
  bankSize: number;
  /** Scores above it are flagged. */
  threshold: number;
}

export type { OodResult };

/** Scales each row of `rows` (n x d, in place) to unit length; a zero row stays zero. */
export function normalizeRows(rows: Float32Array, d: number): Float32Array {
  for (let o = 0; o < rows.length; o += d) {
    let s = 0;
    for (let j = 0; j < d; j++) s += rows[o + j]! * rows[o + j]!;
    if (s > 0) {
      const inv = 1 / Math.sqrt(s);
      for (let j = 0; j < d; j++) rows[o + j]! *= inv;
    }
  }
  return rows;
}

/**
 * Mean distance of a unit vector to the m nearest of the unit vectors it has the dot products `dots` with
 * (|a - b| = sqrt(2 - 2 a.b) for unit vectors); `skip` leaves one out.
 */
function meanNearestDistance(dots: (r: number) => number, n: number, m: number, skip = -1): number {
  if (m <= 0) return NaN;
  // The m largest dot products, in decreasing order.
  const best = new Float64Array(m).fill(-Infinity);
  for (let r = 0; r < n; r++) {
    if (r === skip) continue;
    const dot = dots(r);
    if (dot <= best[m - 1]!) continue;
    let i = m - 1;
    while (i > 0 && best[i - 1]! < dot) {
      best[i] = best[i - 1]!;
      i--;
    }
    best[i] = dot;
  }
  let sum = 0;
  for (let i = 0; i < m; i++) sum += Math.sqrt(Math.max(0, 2 - 2 * best[i]!));
  return sum / m;
}

/**
 * Mean distance of unit vector `v` to its `k` nearest rows of `bank` (unit rows of length d), skipping the row
 * `skip` (an image's own row when scoring the bank against itself).
 */
export function oodScore(bank: Float32Array, d: number, v: ArrayLike<number>, k = OOD_NEIGHBOURS, skip = -1): number {
  const n = bank.length / d;
  const m = Math.min(k, n - (skip >= 0 && skip < n ? 1 : 0));
  const dot = (r: number) => {
    let s = 0;
    for (let j = 0, o = r * d; j < d; j++) s += bank[o + j]! * v[j]!;
    return s;
  };
  return meanNearestDistance(dot, n, m, skip);
}

/** The score of a feature vector from its dot products with the bank's unit vectors and its own length. */
export function scoreFromDots(dots: ArrayLike<number>, norm: number, k = OOD_NEIGHBOURS): number {
  if (!(norm > 0)) return NaN;
  return meanNearestDistance((r) => dots[r]! / norm, dots.length, Math.min(k, dots.length));
}

/** The score below which a share `1 - flagged` of `scores` lies (the threshold that flags about `flagged` of them). */
export function thresholdFor(scores: number[], flagged = OOD_VALIDATION_SHARE): number {
  if (!scores.length) return NaN;
  const sorted = [...scores].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((1 - flagged) * sorted.length) - 1));
  return sorted[i]!;
}

/** Checks graft.json's outOfDistribution; throws naming what is wrong. */
export function checkOodManifest(x: unknown): OodManifest {
  const o = x as Partial<OodManifest> | null;
  const positive = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  if (!o || o.method !== 'knn' || !positive(o.neighbours) || !positive(o.featureSize) || !positive(o.bankSize)) {
    throw new Error("graft.json's outOfDistribution must give method knn, neighbours, featureSize and bankSize");
  }
  if (typeof o.featureLayer !== 'string' || typeof o.bankFile !== 'string' || !/^[\w.-]+$/.test(o.bankFile)) {
    throw new Error("graft.json's outOfDistribution must name its feature layer and bank file");
  }
  if (typeof o.threshold !== 'number' || !Number.isFinite(o.threshold)) throw new Error("graft.json's outOfDistribution threshold is not a number");
  return o as OodManifest;
}

/** The bank file's bytes as vectors, checked against the manifest. */
export function readBank(bytes: Uint8Array, m: OodManifest): Float32Array {
  if (bytes.byteLength !== m.bankSize * m.featureSize * 4) {
    throw new Error(`${m.bankFile} holds ${bytes.byteLength} bytes, graft.json says ${m.bankSize} x ${m.featureSize} float32`);
  }
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}

interface LayerJson {
  class_name: string;
  config: { name: string; layers?: LayerJson[]; output_layers?: [string, number, number][] } & Record<string, unknown>;
  name?: string;
  inbound_nodes?: unknown[];
}

interface ModelJsonLike {
  modelTopology?: { model_config?: LayerJson } & Partial<LayerJson>;
  weightsManifest?: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[];
}

/**
 * A TF.js model.json (functional, one output) and its weights, with one output per image: the model's output,
 * then `featureLayer`'s output (one vector per image), then its dot products with each row of `bank` (a dense
 * layer without bias whose kernel is the bank).
 */
export function withOodOutput<T extends object>(
  modelJson: T,
  weights: Uint8Array,
  ood: Pick<OodManifest, 'featureLayer' | 'featureSize' | 'bankSize'>,
  bank: Float32Array,
): { modelJson: T; weights: Uint8Array } {
  const json = structuredClone(modelJson) as ModelJsonLike;
  const top = json.modelTopology?.model_config ?? (json.modelTopology as LayerJson | undefined);
  const config = top?.config;
  const groups = json.weightsManifest;
  if (!config?.layers || !config.output_layers || config.output_layers.length !== 1 || !groups?.length) {
    throw new Error('the model is not a functional model with one output and a weights manifest');
  }
  const { featureLayer: feature, featureSize: d, bankSize: n } = ood;
  if (!config.layers.some((l) => (l.config.name ?? l.name) === feature)) throw new Error(`layer "${feature}" not found in the model`);
  if (bank.length !== n * d) throw new Error(`the bank holds ${bank.length} values, not ${n} x ${d}`);
  const similarity = 'graft_ood_similarity';
  const name = 'graft_ood_output';
  const [out] = config.output_layers;
  config.layers.push(
    {
      class_name: 'Dense',
      config: { name: similarity, trainable: false, units: n, activation: 'linear', use_bias: false },
      name: similarity,
      inbound_nodes: [[[feature, 0, 0, {}]]],
    },
    {
      class_name: 'Concatenate',
      config: { name, trainable: false, axis: -1 },
      name,
      inbound_nodes: [
        [
          [out![0], out![1], out![2], {}],
          [feature, 0, 0, {}],
          [similarity, 0, 0, {}],
        ],
      ],
    },
  );
  config.output_layers = [[name, 0, 0]];
  // The kernel is [d, n]: the bank transposed.
  const kernel = new Float32Array(d * n);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) kernel[j * n + r] = bank[r * d + j]!;
  groups.at(-1)!.weights.push({ name: `${similarity}/kernel`, shape: [d, n], dtype: 'float32' });
  const all = new Uint8Array(weights.byteLength + kernel.byteLength);
  all.set(weights);
  all.set(new Uint8Array(kernel.buffer), weights.byteLength);
  return { modelJson: json as T, weights: all };
}

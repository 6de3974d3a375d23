// The trained network's pooled features (the head's input), for evaluation and the out-of-distribution bank. They
// come from what extraction cached where it can: the pooled vectors of a frozen backbone as they are, or the frozen
// lower part's outputs through the trained top block (on ONNX Runtime where it runs there: one pass of the block,
// the frozen part below it is not run again). Network inputs (images) go through the frozen part first.
import * as tf from '@tensorflow/tfjs';
import { throwIfAborted } from '../errors';
import type { ArrayForward, FeatureStore } from '../features';
import { applyUpper } from '../fine-tune';
import { createFrozenModel, type FrozenModel } from '../frozen';
import type { Extracted } from './extract';
import { readAndDispose, type Transfer } from './transfer';
import { INFERENCE_BATCH, type TrainContext } from './types';

export interface TrainedFeatures {
  /** Length of a pooled feature vector. */
  readonly size: number;
  /**
   * Pooled features (size per sample, samples one after the other) of some samples of a store extraction filled
   * for the trained part: the lower part's outputs (fine-tuning) or pooled vectors (feature extraction).
   */
  ofStored(store: FeatureStore, samples: readonly number[], signal?: AbortSignal): Promise<Float32Array>;
  /** Pooled features of network inputs, through the frozen part and then the trained one. */
  readonly ofInputs: ArrayForward;
  /** Whether ofInputs takes 8-bit RGB pixels (the frozen part's FrozenModel.pixels). */
  readonly pixels: boolean;
  dispose(): Promise<void>;
}

const FP32 = { fp32: true };

/** What the trained part takes, cached per split: the lower part's outputs (fine-tuning), else pooled vectors. */
export function trainedPartStores(t: Transfer, x: Extracted): { train: FeatureStore | null; validation: FeatureStore | null } {
  return t.parts ? { train: x.lowerTrain, validation: x.lowerVal } : { train: x.headTrain, validation: x.headVal };
}

/** The features of the network as trained now (later changes to its weights do not reach them). */
export async function trainedFeatures(ctx: TrainContext, t: Transfer): Promise<TrainedFeatures> {
  const size = t.pooledShape[0]!;
  const parts = t.parts;
  // The trained top block on ONNX Runtime where it can run there, with the weights it has now.
  const upper: FrozenModel | null =
    parts && t.lowerShapes.length === 1 ? await createFrozenModel(parts.upper, { log: ctx.log, engine: ctx.opts.frozenEngine, what: 'trained top block' }) : null;
  const pool = (maps: Float32Array, n: number) => readAndDispose(tf.tidy(() => t.head.pooled(tf.tensor(maps, [n, ...t.featureShape]))));
  /** Pooled features from what the trained part takes, n samples laid out per input. */
  const fromTrainedInputs = async (inputs: Float32Array[], n: number): Promise<Float32Array> => {
    if (!parts) return inputs[0]!;
    if (upper) return pool((await upper.run(inputs[0]!, n, { transfer: true }))[0]!, n);
    return readAndDispose(tf.tidy(() => t.head.pooled(applyUpper(parts.upper, inputs.map((a, i) => tf.tensor(a, [n, ...t.lowerShapes[i]!]))))));
  };
  return {
    size,
    async ofStored(store, samples, signal) {
      const out = new Float32Array(samples.length * size);
      for (let start = 0; start < samples.length; start += INFERENCE_BATCH) {
        throwIfAborted(signal);
        const idx = samples.slice(start, start + INFERENCE_BATCH);
        out.set(await fromTrainedInputs(store.gather(idx), idx.length), start * size);
      }
      return out;
    },
    // Test images: in fp32 where the frozen part runs in int8, as the validation images (extract.ts).
    pixels: t.base.pixels,
    ofInputs: parts ? async (input, n) => [await fromTrainedInputs(await t.lowerOutputs(input, n, FP32), n)] : (input, n) => t.headFeatures(input, n, FP32),
    dispose: async () => upper?.dispose(),
  };
}

/** Class probabilities of the head on pooled features (size per sample), in inference mode, in batches. */
export async function classifyPooled(t: Transfer, pooled: Float32Array, size: number, signal?: AbortSignal): Promise<Float32Array> {
  const n = pooled.length / size;
  let out = new Float32Array(0);
  for (let start = 0; start < n; start += INFERENCE_BATCH) {
    throwIfAborted(signal);
    const m = Math.min(INFERENCE_BATCH, n - start);
    const x = pooled.subarray(start * size, (start + m) * size);
    const probabilities = await readAndDispose(tf.tidy(() => t.head.classify(tf.tensor2d(x, [m, size]), false)));
    const width = probabilities.length / m;
    if (start === 0) out = new Float32Array(n * width);
    out.set(probabilities, start * width);
  }
  return out;
}

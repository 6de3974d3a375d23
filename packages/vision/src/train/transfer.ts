// What transfer learning (feature extraction and fine-tuning) trains on: the pretrained backbone, the new head,
// and the frozen part of the network (the whole backbone, or the part below the fine-tuned block) as a
// FrozenModel, on ONNX Runtime in a worker thread where it can run there (frozen.ts). Also the functions that turn
// network inputs into what the head and the fine-tuned block take.
import * as tf from '@tensorflow/tfjs';
import { loadBackbone } from '../backbones';
import { throwIfAborted } from '../errors';
import type { ArrayForward } from '../features';
import { applyUpper, prepareFineTuning, type FineTuneParts } from '../fine-tune';
import { createFrozenModel, type FrozenModel, type FrozenRunOptions } from '../frozen';
import { pixelTransform } from '@graft/inference/image';
import { disposeWeights } from '../graph';
import { Head } from '../head';
import type { Plan } from './plan';
import type { RunResources } from './resources';
import type { TrainContext } from './types';

export interface Transfer {
  backbone: tf.LayersModel;
  head: Head;
  /** The backbone's output shape (one sample). */
  featureShape: number[];
  /** What the head takes: pooled vectors. */
  pooledShape: number[];
  /** Fine-tuning only: the backbone split at the fine-tuned block. */
  parts: FineTuneParts | null;
  /** Shapes of the lower part's outputs (fine-tuning). */
  lowerShapes: number[][];
  /** The frozen part: the backbone, or the part below the fine-tuned block. */
  base: FrozenModel;
  /** The top block as it is before fine-tuning, on ONNX Runtime, for the head's features; null where not needed. */
  upper: FrozenModel | null;
  /** Pooled head features of network inputs. */
  headFeatures: ArrayForward;
  /**
   * Pooled head features from the lower part's outputs (through the top block before fine-tuning). With `fp32`,
   * here and in the other two, frozen parts that run in int8 run these samples in fp32 (validation and test images).
   * The first output's buffer may travel to a worker thread and back: `lowers[0]` is then the array that came back
   * (the same values), and an array taken from it before the call is detached.
   */
  headFromLower(lowers: Float32Array[], n: number, opts?: Pick<FrozenRunOptions, 'fp32'>): Promise<Float32Array>;
  /** What the trained part of fine-tuning takes: the lower part's outputs. */
  lowerOutputs: ArrayForward;
}

export async function setUpTransfer(ctx: TrainContext, p: Plan, res: RunResources): Promise<Transfer> {
  const { cfg, log, numClasses } = ctx;
  const spec = p.spec!;
  const backbone = res.own(await loadBackbone(spec.name, ctx.opts.backbones, { inputSize: p.size }), (m) => disposeWeights(m), 'backbone');
  throwIfAborted(ctx.signal);
  const featureShape = (backbone.outputs[0]!.shape as number[]).slice(1);
  const head = res.own(new Head(featureShape, numClasses, cfg.head, cfg.seed), (h) => h.dispose(), 'head');
  const fromLayer = cfg.fineTuning.fromLayer ?? spec.topBlockStart;
  const parts = p.method === 'fine_tuning' ? prepareFineTuning(backbone, fromLayer) : null;
  const lowerShapes = parts ? parts.lower.outputs.map((t) => (t.shape as number[]).slice(1)) : [];

  const base = res.own(
    await createFrozenModel(parts ? parts.lower : backbone, {
      log,
      engine: ctx.opts.frozenEngine,
      precision: ctx.opts.frozenPrecision,
      what: parts ? `${spec.name} below ${fromLayer}` : spec.name,
      pixels: pixelTransform(p.preprocessing),
    }),
    (f) => f.dispose(),
    'frozen base',
  );
  const upperNeeded = parts && (!p.skipHead || p.refit) && lowerShapes.length === 1;
  // The head's global pooling, where it pools: the frozen top block ends with it, so that a batch's features leave
  // its worker thread as vectors (768 values an image for MobileNet v1 0.75) instead of maps (9x9x768 at 288 px),
  // and this thread, which decodes and augments meanwhile, does not pool them.
  const pooling = head.pool && cfg.head.pooling !== 'flatten' ? cfg.head.pooling : null;
  const upper = upperNeeded
    ? res.own(
        await createFrozenModel(pooling ? withPooling(parts.upper, pooling) : parts.upper, {
          log,
          engine: ctx.opts.frozenEngine,
          precision: ctx.opts.frozenPrecision,
          what: `${spec.name} from ${fromLayer}`,
        }),
        (f) => f.dispose(),
        'frozen top block',
      )
    : null;
  throwIfAborted(ctx.signal);

  const pool = async (maps: Float32Array, n: number): Promise<Float32Array> => {
    if (!pooling) return maps;
    return readAndDispose(tf.tidy(() => head.pooled(tf.tensor(maps, [n, ...featureShape]))));
  };
  const headFromLower: Transfer['headFromLower'] = async (lowers, n, o) => {
    if (upper) {
      // The maps' buffer is lent to the top block's worker thread rather than copied there (8 MB a batch of 32).
      // What comes back is the maps' Float32Array (the top block takes no pixels).
      const [pooled] = await upper.run(lowers[0]!, n, { ...o, giveBack: (back) => (lowers[0] = back as Float32Array) });
      return pooled!;
    }
    return readAndDispose(tf.tidy(() => head.pooled(applyUpper(parts!.upper, lowers.map((a, i) => tf.tensor(a, [n, ...lowerShapes[i]!]))))));
  };
  const headFeatures: ArrayForward = async (input, n, o) => {
    const outs = await base.run(input, n, { ...o, transfer: true });
    return [parts ? await headFromLower(outs, n, { fp32: o?.fp32 }) : await pool(outs[0]!, n)];
  };
  const lowerOutputs: ArrayForward = (input, n, o) => base.run(input, n, { ...o, transfer: true });
  return { backbone, head, featureShape, pooledShape: [head.pooledSize], parts, lowerShapes, base, upper, headFeatures, headFromLower, lowerOutputs };
}

/** `model` with a global pooling layer (average or maximum over height and width) after its output. */
function withPooling(model: tf.LayersModel, pooling: 'avg' | 'max'): tf.LayersModel {
  const layer = pooling === 'avg' ? tf.layers.globalAveragePooling2d({}) : tf.layers.globalMaxPooling2d({});
  return tf.model({ inputs: model.inputs, outputs: layer.apply(model.outputs[0]!) as tf.SymbolicTensor, name: `${model.name}_pooled` });
}

/** The network a run trained: the backbone with the head (transfer learning), or a whole model (scratch). */
export type Network = { transfer: Transfer } | { model: tf.LayersModel };

/** A tensor's values; the tensor is disposed. */
export async function readAndDispose(t: tf.Tensor): Promise<Float32Array> {
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

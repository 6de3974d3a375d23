// Data-parallel training steps on more than one core: worker threads hold replicas of the trained model (the
// scratch convnet, or the top block with the head when fine-tuning) and compute the gradients of a share of
// each batch while this thread computes those of its own share; fit() adds them up and applies the optimizer
// here, so the weights and the optimizer state live in one place. TensorFlow.js on wasm runs on one thread,
// so without replicas a training step uses one core.
//
// TrainOptions.threads (GRAFT_TRAIN_THREADS) sets how many threads share a step. The default is 1 (no replicas):
// on the 2-vCPU machine this was built on, a step shared by two threads measured slower than one thread (fine-tuning MobileNet's top
// block at 288: 470 ms a batch of 32 on one thread, 520-750 ms shared; the scratch convnet: 2.4-2.6 s against
// 2.5-2.8 s), although each thread alone computes its half in half the time. Worth trying on machines with
// more (and unshared) cores.
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { syncReads, type LogFn } from './backend';
import type { SyncReads } from '@graft/config/engines';
import type { LossKind } from './fit';
import type { HeadConfig } from './head';
import { WorkerRpc } from '@graft/inference/worker-thread';

/** A trained variable, found by its layer and its index among that layer's weights. */
export interface VariableRef {
  owner: 'model' | 'head';
  layer: string;
  index: number;
}

/** What a worker needs to build a replica. */
export interface ReplicaSpec {
  /** The trained model's topology (`model.toJSON(null, false)`). */
  topology: object;
  /** Every weight of that model, in `model.weights` order, set once (the trained ones are sent every step). */
  weights: Float32Array[];
  /**
   * For fine-tuning: the head on top of the model (its weights are sent every step); the model then runs in
   * inference mode (frozen batch normalization). Null: the model is called with the training flag (scratch).
   */
  head: { featureShape: number[]; numClasses: number; config: HeadConfig; seed: number } | null;
  loss: LossKind;
  numClasses: number;
  variables: VariableRef[];
  backend: string;
}

/** A share of a batch: its inputs and labels as arrays. */
export interface Share {
  xs: Float32Array[];
  xShapes: number[][];
  ys: Float32Array;
  yShape: number[];
}

/** Gradients of the mean loss over a share (in the order of the variables), its mean loss and right answers. */
export interface ShareResult {
  grads: Float32Array[];
  loss: number;
  correct: number;
}

/** Names the trained variables of a model and a head by layer and position. */
export function variableRefs(model: tf.LayersModel, headLayers: tf.layers.Layer[], variables: tf.LayerVariable[]): VariableRef[] {
  const where = new Map<tf.LayerVariable, VariableRef>();
  for (const l of model.layers) l.weights.forEach((w, index) => where.set(w, { owner: 'model', layer: l.name, index }));
  for (const l of headLayers) l.weights.forEach((w, index) => where.set(w, { owner: 'head', layer: l.name, index }));
  return variables.map((v) => {
    const ref = where.get(v);
    if (!ref) throw new Error(`variable ${v.name} belongs to neither the model nor the head`);
    return ref;
  });
}

/** How many threads share a training step (this one included): as many as asked (GRAFT_TRAIN_THREADS), at most the cores. */
export function trainThreads(requested = 1): number {
  return Math.max(1, Math.min(Math.floor(requested), availableParallelism()));
}

/** What replica-worker.ts is asked. */
export type ReplicaRequest = { type: 'build'; id: number; spec: ReplicaSpec; syncReads: SyncReads } | { type: 'step'; id: number; weights: Float32Array[]; share: Share };

const WORKER_ENTRY = new URL('./replica-worker.ts', import.meta.url);

/** One replica in a worker thread (replica-worker.ts). */
class ReplicaWorker {
  private constructor(private readonly rpc: WorkerRpc<ReplicaRequest>) {}

  static async start(spec: ReplicaSpec): Promise<ReplicaWorker> {
    const rpc = await WorkerRpc.start<ReplicaRequest>(WORKER_ENTRY, "a training replica's worker thread");
    try {
      // The replica's thread reads tensors as this one does.
      await rpc.request({ type: 'build', spec, syncReads: syncReads() });
      return new ReplicaWorker(rpc);
    } catch (err) {
      await rpc.close();
      throw err;
    }
  }

  async step(weights: Float32Array[], share: Share): Promise<ShareResult> {
    return (await this.rpc.request<{ result: ShareResult }>({ type: 'step', weights, share })).result;
  }

  close(): Promise<void> {
    return this.rpc.close();
  }
}

/** Worker-thread replicas of a trained model, each taking a share of every batch. */
export class GradientReplicas {
  private constructor(private readonly workers: ReplicaWorker[]) {}

  get count(): number {
    return this.workers.length;
  }

  /**
   * Starts `count` replicas; null (with the reason logged) where none can start, so training goes on in one
   * thread.
   */
  static async start(spec: ReplicaSpec, count: number, log: LogFn = () => {}): Promise<GradientReplicas | null> {
    if (count < 1) return null;
    const started = performance.now();
    const results = await Promise.allSettled(Array.from({ length: count }, () => ReplicaWorker.start(spec)));
    const workers = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(workers.map((w) => w.close()));
      log({ reason: (failed.reason as Error).message }, 'training steps run on one thread: a replica did not start');
      return null;
    }
    log({ replicas: count, seconds: +((performance.now() - started) / 1000).toFixed(2) }, `training steps shared with ${count} worker thread(s)`);
    return new GradientReplicas(workers);
  }

  /** Gradients of each share (one per replica), computed with the given values of the trained variables. */
  compute(weights: Float32Array[], shares: Share[]): Promise<ShareResult[]> {
    if (shares.length > this.workers.length) throw new Error(`${shares.length} shares for ${this.workers.length} replicas`);
    return Promise.all(shares.map((s, i) => this.workers[i]!.step(weights, s)));
  }

  async dispose(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}

// The worker thread of a training replica (replicas.ts): builds the trained model from its topology (and the
// head for fine-tuning), then for each share of a batch sets the trained variables to the values sent and
// returns the gradients of the share's mean loss.
//
// Messages in (each with an id, answered by a message with that id, see WorkerRpc): {type: 'build', spec, syncReads} once,
// then {type: 'step', weights, share}. Out: {type: 'ready'} at start; {type: 'built'}, {type: 'result', result}
// or {type: 'error', message}.
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from './backend';
import { correctCount, crossEntropy, readScalar, readWeights } from './fit';
import { Head } from './head';
import type { ReplicaRequest, ReplicaSpec, Share, ShareResult } from './replicas';
import type { SyncReads } from '@graft/config/engines';

const port = parentPort!;

interface Replica {
  forward(xs: tf.Tensor[], training: boolean): tf.Tensor;
  variables: tf.LayerVariable[];
  spec: ReplicaSpec;
}

let replica: Replica | null = null;

async function build(spec: ReplicaSpec, syncReads: SyncReads): Promise<Replica> {
  await initBackend({ prefer: spec.backend, syncReads });
  const model = (await tf.models.modelFromJSON({ modelTopology: spec.topology } as tf.io.ModelJSON)) as tf.LayersModel;
  tf.tidy(() => model.setWeights(spec.weights.map((w, i) => tf.tensor(w, model.weights[i]!.shape as number[]))));
  const head = spec.head ? new Head(spec.head.featureShape, spec.head.numClasses, spec.head.config, spec.head.seed) : null;
  const layersOf = (owner: 'model' | 'head') => new Map((owner === 'model' ? model.layers : head!.layers).map((l) => [l.name, l]));
  const byOwner = { model: layersOf('model'), head: head ? layersOf('head') : new Map<string, tf.layers.Layer>() };
  const variables = spec.variables.map((ref) => {
    const layer = byOwner[ref.owner].get(ref.layer);
    const v = layer?.weights[ref.index];
    if (!v) throw new Error(`the replica has no weight ${ref.index} in ${ref.owner} layer '${ref.layer}'`);
    return v;
  });
  const apply = (xs: tf.Tensor[], training: boolean) => model.apply(xs.length === 1 ? xs[0]! : xs, { training }) as tf.Tensor;
  const forward = head
    ? (xs: tf.Tensor[], training: boolean) => head.classify(head.pooled(apply(xs, false)), training)
    : (xs: tf.Tensor[], training: boolean) => apply(xs, training);
  return { forward, variables, spec };
}

async function step(r: Replica, weights: Float32Array[], share: Share): Promise<ShareResult> {
  r.variables.forEach((v, i) => {
    const t = tf.tensor(weights[i]!, v.shape as number[]);
    v.write(t);
    t.dispose();
  });
  let correct: tf.Scalar | null = null;
  const { value, grads } = tf.tidy(() => {
    const xs = share.xs.map((x, i) => tf.tensor(x, share.xShapes[i]!));
    const ys = tf.tensor(share.ys, share.yShape);
    return tf.variableGrads(() => {
      const p = r.forward(xs, true);
      correct = tf.keep(correctCount(r.spec.loss, ys, p));
      return crossEntropy(r.spec.loss, ys, p);
    }, r.variables.map((v) => v.read() as tf.Variable));
  });
  try {
    const out = await readWeights(r.variables.map((v) => grads[(v.read() as tf.Variable).name]!));
    const c = correct as tf.Scalar | null;
    return { grads: out, loss: await readScalar(value), correct: c ? await readScalar(c) : 0 };
  } finally {
    tf.dispose([value, ...Object.values(grads), correct as tf.Scalar | null].filter((t): t is tf.Tensor => t != null));
  }
}

// Steps are taken one after another, in the order they arrive.
let queue: Promise<void> = Promise.resolve();

port.on('message', (msg: ReplicaRequest) => {
  if (msg.type === 'build') {
    build(msg.spec, msg.syncReads).then(
      (r) => {
        replica = r;
        port.postMessage({ type: 'built', id: msg.id });
      },
      (err: Error) => port.postMessage({ type: 'error', id: msg.id, message: err.stack ?? err.message }),
    );
    return;
  }
  queue = queue.then(async () => {
    try {
      if (!replica) throw new Error('the replica is not built');
      const result = await step(replica, msg.weights, msg.share);
      port.postMessage({ type: 'result', id: msg.id, result }, result.grads.map((g) => g.buffer as ArrayBuffer));
    } catch (err) {
      port.postMessage({ type: 'error', id: msg.id, message: (err as Error).message });
    }
  });
});

port.postMessage({ type: 'ready' });

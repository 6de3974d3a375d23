// The epochs of one trained phase (the head, fine-tuning, or the scratch convnet): picks up where a checkpoint
// left it, trains with fit(), sharing steps with worker-thread replicas where the backend uses one core, and
// hands a checkpoint to the caller after every epoch.
import * as tf from '@tensorflow/tfjs';
import { checkpointState, checkpointWeights, makeCheckpoint } from '../checkpoint';
import { fit, newPhaseState, phaseDone, readWeights, writeWeights, type BatchSource, type Forward, type HistoryRow, type PhaseState } from '../fit';
import { GradientReplicas, trainThreads, type ReplicaSpec } from '../replicas';
import type { Phase } from '../progress';
import type { GradientEngine } from '../step-engine';
import type { Plan } from './plan';
import type { RunResources } from './resources';
import type { TrainContext } from './types';

/** Backends whose kernels run on one thread: training steps there are shared with worker-thread replicas. */
const SINGLE_THREADED_BACKENDS = new Set(['wasm', 'cpu']);

/** Whether a phase's training steps are meant to run on ONNX Runtime's step graph (where it loads) on this run. */
export const stepsOnOnnxRuntime = (ctx: Pick<TrainContext, 'backend' | 'opts'>): boolean =>
  SINGLE_THREADED_BACKENDS.has(ctx.backend) && ctx.opts.trainEngine !== 'tfjs';

export interface EpochsOptions {
  phase: HistoryRow['phase'];
  settings: { epochs: number; optimizer: 'rmsprop' | 'adam' | 'sgd'; learningRate: number };
  variables: tf.LayerVariable[];
  forward: Forward;
  train: BatchSource;
  validation: BatchSource | null;
  extraLoss?: () => tf.Scalar | null;
  /** What a replica needs to share the steps; without it every step runs on this thread. */
  replicaSpec?: () => Promise<ReplicaSpec>;
  /**
   * Builds the engine that runs the steps on ONNX Runtime, applying the phase's optimizer's update where it can
   * (null: TensorFlow.js computes them).
   */
  gradientEngine?: (optimizer: tf.Optimizer) => Promise<GradientEngine | null>;
  /**
   * Validation loss of the weights the phase starts from (fine-tuning: the head's best): they stay the best weights
   * until an epoch validates lower, so a phase that only makes the model worse leaves it as it found it.
   */
  startingValLoss?: number | null;
  /** Where the epochs' progress shows (default: the phase itself, from 0 to 1). */
  progress?: { phase: Phase; from: number; to: number };
  /**
   * Whether the epochs are the phase's own (default true): their rows go into the run's history and out as epoch
   * events, each ends with a checkpoint, and a checkpoint of the phase is resumed from. false: a refit's epochs
   * (train/refit.ts), which start anew every time and leave no rows.
   */
  record?: boolean;
}

export async function runEpochs(ctx: TrainContext, p: Plan, res: RunResources, o: EpochsOptions): Promise<void> {
  const { phase, settings } = o;
  const record = o.record ?? true;
  const state = record ? restore(ctx, p, phase, o.variables) : newPhaseState();
  if (state.epoch === 0 && o.validation && o.startingValLoss != null && Number.isFinite(o.startingValLoss)) {
    state.bestValLoss = o.startingValLoss;
    state.best = await readWeights(o.variables);
  }
  const shown = o.progress ?? { phase, from: 0, to: 1 };
  const at = (epochs: number) => shown.from + ((shown.to - shown.from) * epochs) / settings.epochs;
  if (!o.progress) res.progress.phase(phase);
  const optimizer = res.own(makeOptimizer(settings.optimizer, settings.learningRate), (x) => x.dispose(), 'optimizer');
  const todo = !phaseDone(state, settings.epochs);
  // On backends that compute on the CPU, ONNX Runtime computes the steps' gradients where it can (step-engine.ts).
  const gradients = todo && o.gradientEngine && stepsOnOnnxRuntime(ctx) ? await o.gradientEngine(optimizer) : null;
  if (gradients) res.own(gradients, (g) => g.dispose(), 'training engine');
  // Otherwise heavy steps (convolutions) are shared with worker threads on backends that use one core.
  const threads = !gradients && o.replicaSpec && SINGLE_THREADED_BACKENDS.has(ctx.backend) && todo ? trainThreads(ctx.opts.threads) : 1;
  const replicas = threads > 1 ? await GradientReplicas.start(await o.replicaSpec!(), threads - 1, ctx.log) : null;
  if (replicas) res.own(replicas, (r) => r.dispose(), 'replicas');
  await fit({
    replicas,
    gradients,
    onReplicaFailure: () => ctx.log({ phase }, 'a training replica failed; training goes on in one thread'),
    phase,
    attempt: ctx.attempt,
    epochs: settings.epochs,
    forward: o.forward,
    variables: o.variables,
    extraLoss: o.extraLoss,
    optimizer,
    loss: ctx.kind,
    train: o.train,
    validation: o.validation,
    patience: o.validation ? (phase === 'fine_tuning' ? p.fineTuningPatience : p.patience) : null,
    state,
    history: record ? p.history : [],
    signal: ctx.signal,
    onBatch: (epoch, fraction) => res.progress.update(shown.phase, at(epoch + fraction), { epoch: epoch + 1, epochs: settings.epochs }),
    onEpoch: async (row, s) => {
      res.progress.update(shown.phase, at(s.epoch), { epoch: row.epoch, epochs: settings.epochs }, true);
      if (!record) return ctx.log({ ...row }, `epoch ${row.epoch} of ${phase} (refit) done`);
      ctx.emit({ type: 'epoch', row });
      ctx.log({ ...row }, `epoch ${row.epoch} of ${phase} done`);
      if (ctx.opts.onCheckpoint) {
        const current = await readWeights(o.variables);
        await ctx.opts.onCheckpoint(
          makeCheckpoint({ method: p.method, backbone: p.backboneName, inputSize: p.size, labels: ctx.labels, phase, state: s, history: p.history, variables: o.variables, current }),
        );
      }
    },
  });
  await replicas?.dispose();
  await gradients?.dispose();
  ctx.log({ phase, bestEpoch: state.bestEpoch, bestValLoss: state.bestValLoss, stopped: state.stopped }, `${phase} finished`);
}

/** The phase's state from the checkpoint where it is of this phase (its weights written back), else a new one. */
function restore(ctx: TrainContext, p: Plan, phase: HistoryRow['phase'], variables: tf.LayerVariable[]): PhaseState {
  if (!p.resume || p.resume.meta.phase !== phase) return newPhaseState();
  const { current, best } = checkpointWeights(p.resume, variables);
  writeWeights(variables, current);
  ctx.log({ phase, epoch: p.resume.meta.epoch }, 'resuming from checkpoint');
  return checkpointState(p.resume, best);
}

function makeOptimizer(name: 'rmsprop' | 'adam' | 'sgd', learningRate: number): tf.Optimizer {
  switch (name) {
    case 'adam':
      return tf.train.adam(learningRate);
    case 'sgd':
      return tf.train.sgd(learningRate);
    default:
      return tf.train.rmsprop(learningRate, 0.9, 0, 1e-7);
  }
}

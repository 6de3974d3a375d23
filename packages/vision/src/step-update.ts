// The optimizer's update inside a training-step graph (step-graph.ts): the graph takes each trained weight and
// its optimizer slots, and returns them updated, as TensorFlow.js's optimizer would leave them after
// applyGradients() with that step's gradients. The weights go from fit() to ONNX Runtime and back once per
// step, the slots stay with the engine (step-engine.ts), and no TensorFlow.js kernel runs for the update.
import type * as tf from '@tensorflow/tfjs';
import type { GraphBuilder } from '@graft/inference/onnx-graph';

/** TensorFlow.js's update rules that the step graph applies (RMSprop without centering, Adam, plain SGD). */
export type UpdateRule =
  | { kind: 'sgd'; learningRate: number }
  | { kind: 'rmsprop'; learningRate: number; decay: number; momentum: number; epsilon: number }
  | { kind: 'adam'; learningRate: number; beta1: number; beta2: number; epsilon: number };

/** The update rule of a TensorFlow.js optimizer, or null where the graph does not apply it (fit() then does). */
export function updateRule(optimizer: tf.Optimizer): UpdateRule | null {
  const c = optimizer.getConfig() as Record<string, number | boolean>;
  const n = (k: string) => c[k] as number;
  switch (optimizer.getClassName()) {
    case 'SGD':
      return { kind: 'sgd', learningRate: n('learningRate') };
    case 'RMSProp':
      return c.centered ? null : { kind: 'rmsprop', learningRate: n('learningRate'), decay: n('decay'), momentum: n('momentum'), epsilon: n('epsilon') };
    case 'Adam':
      return { kind: 'adam', learningRate: n('learningRate'), beta1: n('beta1'), beta2: n('beta2'), epsilon: n('epsilon') };
    default:
      return null;
  }
}

/** Slots per weight: RMSprop's mean square and moment, Adam's first and second moments. */
export const slotCount = (rule: UpdateRule): number => (rule.kind === 'sgd' ? 0 : 2);

/**
 * Scalar graph inputs a rule needs each step, with their values at step t (1 for the first): Adam's
 * 1 - beta1^t and 1 - beta2^t.
 */
export function stepScalars(rule: UpdateRule, t: number): Record<string, number> {
  if (rule.kind !== 'adam') return {};
  return { one_minus_acc_beta1: 1 - rule.beta1 ** t, one_minus_acc_beta2: 1 - rule.beta2 ** t };
}

/** Adds a weight's update; returns the new weight and slots, in TensorFlow.js's order of operations. */
export function addUpdate(g: GraphBuilder, rule: UpdateRule, w: string, grad: string, slots: string[]): { weight: string; slots: string[] } {
  const s = (v: number) => g.addScalar('k', v);
  const mul = (a: string, b: string) => g.add('Mul', [a, b]);
  const add = (a: string, b: string) => g.add('Add', [a, b]);
  if (rule.kind === 'sgd') return { weight: g.add('Sub', [w, mul(grad, s(rule.learningRate))]), slots: [] };
  const [a, b] = slots as [string, string];
  const square = mul(grad, grad);
  if (rule.kind === 'rmsprop') {
    const ms = add(mul(a, s(rule.decay)), mul(square, s(1 - rule.decay)));
    const moment = add(mul(b, s(rule.momentum)), g.add('Div', [mul(grad, s(rule.learningRate)), g.add('Sqrt', [add(ms, s(rule.epsilon))])]));
    return { weight: g.add('Sub', [w, moment]), slots: [ms, moment] };
  }
  const m = add(mul(a, s(rule.beta1)), mul(grad, s(1 - rule.beta1)));
  const v = add(mul(b, s(rule.beta2)), mul(square, s(1 - rule.beta2)));
  const mHat = g.add('Div', [m, 'one_minus_acc_beta1']);
  const vHat = g.add('Div', [v, 'one_minus_acc_beta2']);
  const stepSize = g.add('Div', [mHat, add(g.add('Sqrt', [vHat]), s(rule.epsilon))]);
  return { weight: add(mul(stepSize, s(-rule.learningRate)), w), slots: [m, v] };
}

// A training step as an ONNX graph: the forward pass of the trained part of a network (a chain of the top
// block's layers, then the head), the loss as fit.ts computes it (cross-entropy of clipped probabilities), and
// the gradient of every trained weight, written out by hand. ONNX Runtime runs it on every core with its own
// matrix kernels; the optimizer stays in TensorFlow.js (step-engine.ts).
//
// Graph inputs: `x` (the block's input, NHWC, or pooled vectors where there is no block), `y` (labels as fit.ts
// takes them), `inv_n` (1 / batch size, a scalar), one `mask_<i>` per dropout layer (0 or 1 / (1 - rate)), then
// `w<i>` for each trained weight. Outputs: `loss`, `correct`, then `g<i>` for each trained weight.
//
// Layers it can express (anything else is refused with the reason, and training stays on TensorFlow.js):
// DepthwiseConv2D (odd square kernel, stride 1, 'same', depth multiplier 1) as the first trained layer, Conv2D
// 1x1 at stride 1, BatchNormalization in inference mode (frozen), ReLU / ReLU with a maximum / Activation relu,
// relu6 or linear; the head's global average pooling, Dense (relu or linear, then the sigmoid or softmax output)
// and Dropout.
import type * as tf from '@tensorflow/tfjs';
import { attr, GraphBuilder } from '@graft/inference/onnx-graph';
import { encodeModel } from '@graft/inference/onnx-proto';
import type { LossKind } from './fit';

const OPSET = 13;
/** As fit.ts's crossEntropy. */
const EPSILON = 1e-7;

export class UnsupportedStepError extends Error {}

/** What the step graph is built from: layers with their current (frozen) weight values. */
export interface StepLayer {
  className: string;
  config: Record<string, unknown>;
  /** Every weight of the layer, in layer.weights order, with its value. */
  weights: { variable: tf.LayerVariable; value: Float32Array; shape: number[] }[];
}

export interface StepGraphSpec {
  /** The trained block's layers in order (without the input layer); empty where only the head is trained. */
  block: StepLayer[];
  /** The head: pooling ('avg' or none for vectors), then its Dense and Dropout layers. */
  pooling: 'avg' | null;
  head: StepLayer[];
  /** Shape of one input sample. */
  inputShape: number[];
  loss: LossKind;
  /** The trained variables, in the order of the gradients the graph returns. */
  variables: tf.LayerVariable[];
}

export interface StepGraph {
  onnx: Uint8Array;
  /** Width of each dropout mask (per sample) and its rate. */
  dropouts: { width: number; rate: number }[];
  /** Names of the graph's outputs. */
  outputs: { loss: string; correct: string; grads: string[] };
}

type Backward = (dy: string) => string | null;

/**
 * Builds the step graph; throws UnsupportedStepError naming what it cannot express. With `backward: false`, the
 * graph of the loss and right answers alone (for validation; its dropout masks are then fed with ones).
 */
export function buildStepGraph(spec: StepGraphSpec, opts: { backward?: boolean } = {}): StepGraph {
  const backward = opts.backward ?? true;
  const g = new GraphBuilder();
  const trained = new Map(spec.variables.map((v, i) => [v, i]));
  const grads: (string | null)[] = spec.variables.map(() => null);
  const x = g.addInput('x', [null, ...spec.inputShape]);
  const y = g.addInput('y', [null, spec.loss === 'binary' ? 1 : null]);
  const invN = g.addInput('inv_n', []);
  const dropouts: StepGraph['dropouts'] = [];
  const maskInputs: string[] = [];
  const weightInputs = spec.variables.map((v, i) => ({ name: g.unique(`w${i}`), shape: v.shape as number[] }));
  const ints = (base: string, v: number[]) => g.addInt64(base, v);
  const scalar = (base: string, v: number) => g.addScalar(base, v);
  /** The graph value of a weight: an input where it is trained, a constant otherwise. */
  const weight = (w: StepLayer['weights'][number]): { name: string; index: number | null } => {
    const index = trained.get(w.variable);
    if (index !== undefined) return { name: `w${index}`, index };
    return { name: g.addFloat('const', w.shape, w.value), index: null };
  };
  const tape: Backward[] = [];
  let cur = x;
  let shape = [...spec.inputShape];
  let anyTrained = false;

  for (const layer of spec.block) {
    const c = layer.config;
    const trainedHere = layer.weights.some((w) => trained.has(w.variable));
    const needInputGrad = anyTrained;
    const input = cur;
    switch (layer.className) {
      case 'DepthwiseConv2D': {
        const k = (c.kernelSize as number[]) ?? [];
        const strides = (c.strides as number[]) ?? [1, 1];
        if (needInputGrad) throw new UnsupportedStepError('a depthwise convolution after a trained layer');
        if (k.length !== 2 || k[0] !== k[1] || k[0]! % 2 !== 1 || strides.some((s) => s !== 1) || c.padding !== 'same') {
          throw new UnsupportedStepError(`depthwise convolution ${JSON.stringify({ k, strides, padding: c.padding })}`);
        }
        if ((c.depthMultiplier ?? 1) !== 1 || (c.dilationRate as number[] | undefined)?.some((d) => d !== 1)) {
          throw new UnsupportedStepError('a depthwise convolution with a depth multiplier or dilation');
        }
        checkLinear(layer);
        const [kk] = k as [number];
        const p = (kk - 1) / 2;
        const [h, w, ch] = shape as [number, number, number];
        const kernel = weight(layer.weights[0]!);
        const bias = layer.weights[1] ? weight(layer.weights[1]) : null;
        const wOnnx = g.add('Transpose', [kernel.name], [attr.ints('perm', [2, 3, 0, 1])]); // [C,1,k,k]
        const xN = g.add('Transpose', [input], [attr.ints('perm', [0, 3, 1, 2])]);
        const convAttrs = [attr.int('group', ch), attr.ints('pads', [p, p, p, p]), attr.ints('kernel_shape', [kk, kk])];
        const yN = g.add('Conv', bias ? [xN, wOnnx, bias.name] : [xN, wOnnx], convAttrs);
        cur = g.add('Transpose', [yN], [attr.ints('perm', [0, 2, 3, 1])]);
        tape.push((dy) => {
          if (kernel.index !== null) {
            // dW[c, kh, kw] = sum over n, i, j of xpad[n, c, i + kh, j + kw] dy[n, c, i, j]: a grouped convolution
            // with the batch read as the channels of each group and dy as the filter.
            const xp = g.add('Pad', [xN, ints('pads', [0, 0, p, p, 0, 0, p, p])]);
            const xr = g.add('Reshape', [g.add('Transpose', [xp], [attr.ints('perm', [1, 0, 2, 3])]), ints('shape', [1, -1, h + 2 * p, w + 2 * p])]);
            const dyT = g.add('Transpose', [dy], [attr.ints('perm', [3, 0, 1, 2])]); // [C, n, H, W]
            const dw = g.add('Conv', [xr, dyT], [attr.int('group', ch)]); // [1, C, k, k]
            grads[kernel.index] = g.add('Reshape', [g.add('Transpose', [g.add('Reshape', [dw, ints('shape', [ch, kk, kk])])], [attr.ints('perm', [1, 2, 0])]), ints('shape', [kk, kk, ch, 1])]);
          }
          if (bias?.index != null) grads[bias.index] = g.add('ReduceSum', [dy, ints('axes', [0, 1, 2])], [attr.int('keepdims', 0)]);
          return null;
        });
        break;
      }
      case 'Conv2D': {
        const k = c.kernelSize as number[];
        const strides = (c.strides as number[]) ?? [1, 1];
        if (k.some((v) => v !== 1) || strides.some((s) => s !== 1) || (c.dilationRate as number[] | undefined)?.some((d) => d !== 1)) {
          throw new UnsupportedStepError(`convolution ${JSON.stringify({ k, strides })} (only 1x1 at stride 1)`);
        }
        checkLinear(layer);
        const [, , ci] = shape as [number, number, number];
        const co = c.filters as number;
        const kernel = weight(layer.weights[0]!);
        const bias = layer.weights[1] ? weight(layer.weights[1]) : null;
        const w2 = g.add('Reshape', [kernel.name, ints('shape', [ci, co])]);
        const prod = g.add('MatMul', [input, w2]);
        cur = bias ? g.add('Add', [prod, bias.name]) : prod;
        shape = [shape[0]!, shape[1]!, co];
        tape.push((dy) => {
          const d2 = g.add('Reshape', [dy, ints('shape', [-1, co])]);
          if (kernel.index !== null) {
            const x2 = g.add('Reshape', [input, ints('shape', [-1, ci])]);
            grads[kernel.index] = g.add('Reshape', [g.add('Gemm', [x2, d2], [attr.int('transA', 1)]), ints('shape', [1, 1, ci, co])]);
          }
          if (bias?.index != null) grads[bias.index] = g.add('ReduceSum', [d2, ints('axes', [0])], [attr.int('keepdims', 0)]);
          if (!needInputGrad) return null;
          return g.add('MatMul', [dy, g.add('Transpose', [w2], [attr.ints('perm', [1, 0])])]);
        });
        break;
      }
      case 'BatchNormalization': {
        if (trainedHere) throw new UnsupportedStepError('a trained batch normalization');
        const axis = (c.axis as number) ?? -1;
        if (axis !== -1 && axis !== 3) throw new UnsupportedStepError(`batch normalization on axis ${axis}`);
        const { scale, offset } = batchNormAffine(layer);
        const a = g.addFloat('bn_scale', [scale.length], scale);
        cur = g.add('Add', [g.add('Mul', [input, a]), g.addFloat('bn_offset', [offset.length], offset)]);
        tape.push((dy) => (needInputGrad ? g.add('Mul', [dy, a]) : null));
        break;
      }
      case 'ReLU':
      case 'Activation': {
        const max = reluMax(layer);
        if (max === -1) cur = input; // linear
        else cur = max === null ? g.add('Relu', [input]) : g.add('Clip', [input, scalar('zero', 0), scalar('max', max)]);
        tape.push((dy) => {
          if (!needInputGrad) return null;
          if (max === -1) return dy;
          let pass = g.add('Greater', [input, scalar('zero', 0)]);
          if (max !== null) pass = g.add('And', [pass, g.add('LessOrEqual', [input, scalar('max', max)])]);
          return g.add('Mul', [dy, g.add('Cast', [pass], [attr.int('to', 1)])]);
        });
        break;
      }
      default:
        throw new UnsupportedStepError(`a ${layer.className} layer in the trained block`);
    }
    anyTrained ||= trainedHere;
  }

  // Head: pooling, Dense and Dropout layers, the output activation.
  const afterBlock = cur;
  const blockShape = shape;
  if (spec.pooling === 'avg') {
    if (shape.length !== 3) throw new UnsupportedStepError(`average pooling of a feature map of shape [${shape}]`);
    cur = g.add('ReduceMean', [cur], [attr.ints('axes', [1, 2]), attr.int('keepdims', 0)]);
    const area = shape[0]! * shape[1]!;
    const needs = anyTrained;
    tape.push((dy) => {
      if (!needs) return null;
      const spread = g.add('Mul', [g.add('Unsqueeze', [dy, ints('axes', [1, 2])]), scalar('inv_area', 1 / area)]);
      return g.add('Expand', [spread, g.add('Shape', [afterBlock])]);
    });
  } else if (blockShape.length !== 1) {
    throw new UnsupportedStepError(`a head pooling other than average (feature map of shape [${blockShape}])`);
  }
  const headLayers = spec.head;
  let logits: string | null = null;
  let outputBackward: Backward | null = null;
  headLayers.forEach((layer, i) => {
    const input = cur;
    const needInputGrad = anyTrained;
    const last = i === headLayers.length - 1;
    if (layer.className === 'Dropout') {
      const rate = layer.config.rate as number;
      const mask = g.addInput(`mask_${dropouts.length}`, [null, null]);
      dropouts.push({ width: (shape.at(-1) ?? 0) as number, rate });
      maskInputs.push(mask);
      cur = g.add('Mul', [input, mask]);
      tape.push((dy) => (needInputGrad ? g.add('Mul', [dy, mask]) : null));
      return;
    }
    if (layer.className !== 'Dense') throw new UnsupportedStepError(`a ${layer.className} layer in the head`);
    const act = layer.config.activation as string;
    if (last !== (act === 'sigmoid' || act === 'softmax') || (!last && act !== 'relu' && act !== 'linear')) {
      throw new UnsupportedStepError(`a Dense layer with activation ${act} in the head`);
    }
    const kernel = weight(layer.weights[0]!);
    const bias = layer.weights[1] ? weight(layer.weights[1]) : null;
    const units = layer.config.units as number;
    const pre = g.add('Gemm', bias ? [input, kernel.name, bias.name] : [input, kernel.name]);
    shape = [units];
    if (last) logits = pre;
    cur = act === 'relu' ? g.add('Relu', [pre]) : pre;
    // The output layer's gradient comes in as d(loss)/d(logits): its activation belongs to the loss.
    const backward: Backward = (dy) => {
      const dPre = act === 'relu' ? g.add('Mul', [dy, g.add('Cast', [g.add('Greater', [pre, scalar('zero', 0)])], [attr.int('to', 1)])]) : dy;
      if (kernel.index !== null) grads[kernel.index] = g.add('Gemm', [input, dPre], [attr.int('transA', 1)]);
      if (bias?.index != null) grads[bias.index] = g.add('ReduceSum', [dPre, ints('axes', [0])], [attr.int('keepdims', 0)]);
      return needInputGrad ? g.add('Gemm', [dPre, kernel.name], [attr.int('transB', 1)]) : null;
    };
    if (last) outputBackward = backward;
    else tape.push(backward);
    anyTrained ||= kernel.index !== null || bias?.index != null;
  });
  if (logits === null || outputBackward === null) throw new UnsupportedStepError('a head without an output layer');

  const { loss, correct, dLogits } = lossAndGradient(g, spec.loss, logits, y, invN);
  if (backward) {
    let d: string | null = (outputBackward as Backward)(dLogits);
    for (let i = tape.length - 1; i >= 0 && d !== null; i--) d = tape[i]!(d);
    grads.forEach((name, i) => {
      if (name === null) throw new UnsupportedStepError(`no gradient for ${spec.variables[i]!.name}`);
    });
  }
  g.outputs.push({ name: loss, shape: [] }, { name: correct, shape: [] });
  const gradOutputs = (backward ? grads : []).map((name, i) => {
    const out = g.add('Identity', [name!], [], `g${i}`);
    g.outputs.push({ name: out, shape: spec.variables[i]!.shape as number[] });
    return out;
  });
  // Trained weights are inputs after x, y, inv_n and the masks.
  for (const w of weightInputs) g.inputs.push({ name: w.name, shape: w.shape });
  g.prune();
  return { onnx: encodeModel(g.toModel(OPSET, {}, 'graft_train_step')), dropouts, outputs: { loss, correct, grads: gradOutputs } };
}

/** Loss and right answers as fit.ts counts them, and d(loss)/d(logits). */
function lossAndGradient(g: GraphBuilder, kind: LossKind, logits: string, y: string, invN: string) {
  const s = (base: string, v: number) => g.addScalar(base, v);
  const p = kind === 'binary' ? g.add('Sigmoid', [logits]) : g.add('Softmax', [logits], [attr.int('axis', -1)]);
  const lo = s('eps', EPSILON);
  const hi = s('one_minus_eps', 1 - EPSILON);
  const one = s('one', 1);
  const pc = g.add('Clip', [p, lo, hi]);
  const inRange = g.add('Cast', [g.add('And', [g.add('GreaterOrEqual', [p, lo]), g.add('LessOrEqual', [p, hi])])], [attr.int('to', 1)]);
  const yOverP = g.add('Div', [y, pc]);
  const sumAll = (t: string, out?: string) => g.add('ReduceSum', [t], [attr.int('keepdims', 0)], out);
  let logLik: string;
  let dP: string;
  if (kind === 'binary') {
    const notY = g.add('Sub', [one, y]);
    const notP = g.add('Sub', [one, pc]);
    logLik = g.add('Add', [g.add('Mul', [y, g.add('Log', [pc])]), g.add('Mul', [notY, g.add('Log', [notP])])]);
    dP = g.add('Sub', [g.add('Div', [notY, notP]), yOverP]);
  } else {
    logLik = g.add('Mul', [y, g.add('Log', [pc])]);
    dP = g.add('Neg', [yOverP]);
  }
  const loss = g.add('Neg', [g.add('Mul', [sumAll(logLik), invN])], [], 'loss_value');
  dP = g.add('Mul', [g.add('Mul', [dP, inRange]), invN]);
  let dLogits: string;
  if (kind === 'binary') {
    dLogits = g.add('Mul', [dP, g.add('Mul', [p, g.add('Sub', [one, p])])]);
  } else {
    const dot = g.add('ReduceSum', [g.add('Mul', [dP, p]), g.addInt64('axes', [1])], [attr.int('keepdims', 1)]);
    dLogits = g.add('Mul', [p, g.add('Sub', [dP, dot])]);
  }
  let hits: string;
  if (kind === 'binary') {
    const half = s('half', 0.5);
    hits = g.add('Equal', [g.add('Greater', [p, half]), g.add('Greater', [y, half])]);
  } else {
    hits = g.add('Equal', [g.add('ArgMax', [p], [attr.int('axis', 1)]), g.add('ArgMax', [y], [attr.int('axis', 1)])]);
  }
  const correct = sumAll(g.add('Cast', [hits], [attr.int('to', 1)]), 'correct');
  return { loss, correct, dLogits };
}

function checkLinear(layer: StepLayer): void {
  const act = layer.config.activation as string | undefined;
  if (act && act !== 'linear') throw new UnsupportedStepError(`a ${layer.className} with activation ${act}`);
  if (layer.config.kernelRegularizer || layer.config.depthwiseRegularizer || layer.config.biasRegularizer) throw new UnsupportedStepError(`a ${layer.className} with a weight regularizer`);
}

/** ReLU's maximum (null: none), or -1 for a linear activation. */
function reluMax(layer: StepLayer): number | null {
  if (layer.className === 'ReLU') {
    if (layer.config.negativeSlope || layer.config.threshold) throw new UnsupportedStepError('a leaky or thresholded ReLU');
    return (layer.config.maxValue as number | null | undefined) ?? null;
  }
  const act = layer.config.activation as string;
  if (act === 'relu') return null;
  if (act === 'relu6') return 6;
  if (act === 'linear') return -1;
  throw new UnsupportedStepError(`an activation ${act} in the trained block`);
}

/** Frozen batch normalization as y = x * scale + offset. */
function batchNormAffine(layer: StepLayer): { scale: Float32Array; offset: Float32Array } {
  const c = layer.config;
  const vals = layer.weights.map((w) => w.value);
  let k = 0;
  const gamma = c.scale !== false ? vals[k++]! : null;
  const beta = c.center !== false ? vals[k++]! : null;
  const mean = vals[k++]!;
  const variance = vals[k++]!;
  const eps = (c.epsilon as number) ?? 1e-3;
  const scale = new Float32Array(mean.length);
  const offset = new Float32Array(mean.length);
  for (let i = 0; i < mean.length; i++) {
    scale[i] = (gamma ? gamma[i]! : 1) / Math.sqrt(variance[i]! + eps);
    offset[i] = (beta ? beta[i]! : 0) - mean[i]! * scale[i]!;
  }
  return { scale, offset };
}

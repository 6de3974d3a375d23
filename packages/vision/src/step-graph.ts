// A training step as an ONNX graph: the forward pass of the trained part of a network (a chain of the top
// block's layers, then the head), the loss as fit.ts computes it (cross-entropy of clipped probabilities), the
// gradient of every trained weight, written out by hand, and where asked, the optimizer's update
// (step-update.ts). ONNX Runtime runs it on every core with its own matrix kernels (step-engine.ts).
//
// Values stay NHWC. A frozen batch normalization right after a convolution is folded into the convolution's
// kernel and bias; the depthwise convolution and its filter gradient run on ONNX Runtime's blocked-layout
// kernels where it has them (step-depthwise.ts).
//
// Graph inputs: `x` (the block's input, NHWC, or pooled vectors where there is no block), `y` (labels as fit.ts
// takes them), `inv_n` (1 / batch size, a scalar), one `mask_<i>` per dropout layer (0 or 1 / (1 - rate)), then
// `w<i>` for each trained weight; with an update, `s<i>_<j>` for each weight's optimizer slots and the update's
// step scalars. Outputs: `loss`, `correct`, then `g<i>` for each trained weight, or with an update, the new
// weights `nw<i>` and slots `ns<i>_<j>`.
//
// Layers it can express (anything else is refused with the reason, and training stays on TensorFlow.js):
// DepthwiseConv2D (odd square kernel, stride 1, 'same', depth multiplier 1) as the first trained layer, Conv2D
// 1x1 at stride 1, BatchNormalization in inference mode (frozen), ReLU / ReLU with a maximum / Activation relu,
// relu6 or linear; the head's global average pooling, Dense (relu or linear, then the sigmoid or softmax output)
// and Dropout.
import type * as tf from '@tensorflow/tfjs';
import { attr, GraphBuilder } from '@graft/inference/onnx-graph';
import { encodeModel } from '@graft/inference/onnx-proto';
import { depthwiseFilterGradient, depthwiseForward } from './step-depthwise';
import { addUpdate, slotCount, stepScalars, type UpdateRule } from './step-update';
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
  /** Where set, the graph applies this optimizer update and returns the new weights instead of gradients. */
  update?: UpdateRule | null;
}

export interface StepGraph {
  onnx: Uint8Array;
  /** Width of each dropout mask (per sample) and its rate. */
  dropouts: { width: number; rate: number }[];
  /** The optimizer's update the graph applies (null: it returns the gradients). */
  update: UpdateRule | null;
  /**
   * Names of the graph's outputs: the gradients, or with an update, the updated weights and slots (inputs
   * `s<i>_<j>`, zeros before the first step, and the step scalars of stepScalars()).
   */
  outputs: { loss: string; correct: string; grads: string[]; weights: string[]; slots: string[][] };
}

type Backward = (dy: string) => string | null;

/** What the parts of the graph share while it is built. */
interface Build {
  g: GraphBuilder;
  trained: Map<tf.LayerVariable, number>;
  grads: (string | null)[];
  tape: Backward[];
  /** Gradients that are only broadcastable to their value's shape (the pooling's), with that value. */
  broadcast: Map<string, string>;
  /** Channels per block of ONNX Runtime's blocked layout, or null where it is not used. */
  nchwcBlock: number | null;
}

export interface StepGraphOptions {
  /** false: the graph of the loss and right answers alone (validation; dropout masks are fed with ones). */
  backward?: boolean;
  /**
   * Channels per block of ONNX Runtime's blocked layout (com.microsoft.nchwc ops) where the session has those
   * ops (8 with AVX2, 16 with AVX-512), for the depthwise convolution; null or absent: ONNX ops alone.
   */
  nchwcBlock?: number | null;
}

/** Builds the step graph; throws UnsupportedStepError naming what it cannot express. */
export function buildStepGraph(spec: StepGraphSpec, opts: StepGraphOptions = {}): StepGraph {
  const backward = opts.backward ?? true;
  const g = new GraphBuilder();
  const b: Build = { g, trained: new Map(spec.variables.map((v, i) => [v, i])), grads: spec.variables.map(() => null), tape: [], broadcast: new Map(), nchwcBlock: opts.nchwcBlock ?? null };
  const { grads, tape } = b;
  const x = g.addInput('x', [null, ...spec.inputShape]);
  const y = g.addInput('y', [null, spec.loss === 'binary' ? 1 : null]);
  const invN = g.addInput('inv_n', []);
  const dropouts: StepGraph['dropouts'] = [];
  const maskInputs: string[] = [];
  const weightInputs = spec.variables.map((v, i) => ({ name: g.unique(`w${i}`), shape: v.shape as number[] }));
  if (backward && spec.update) {
    // The update's inputs, added last (updateOutputs() reads them by these names).
    const rule = spec.update;
    spec.variables.forEach((_, i) => Array.from({ length: slotCount(rule) }, (_, j) => g.unique(`s${i}_${j}`)));
    Object.keys(stepScalars(rule, 1)).forEach((name) => g.unique(name));
  }
  const ints = (base: string, v: number[]) => g.addInt64(base, v);
  const scalar = (base: string, v: number) => g.addScalar(base, v);
  const weight = (w: StepLayer['weights'][number]) => graphWeight(b, w);
  let { cur, shape, anyTrained } = buildBlock(b, spec.block, x, spec.inputShape);

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
      // [n, 1, 1, C]: a ReLU's mask spreads it over the map; any other layer expands it (full()).
      const spread = g.add('Mul', [g.add('Unsqueeze', [dy, ints('axes', [1, 2])]), scalar('inv_area', 1 / area)]);
      b.broadcast.set(spread, afterBlock);
      return spread;
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
  const update = backward ? (spec.update ?? null) : null;
  const outputs = update ? updateOutputs(g, spec.variables, grads as string[], update) : { grads: gradOutputs(g, spec.variables, backward ? (grads as string[]) : []), weights: [], slots: [] };
  // Trained weights are inputs after x, y, inv_n and the masks; then the slots and step scalars of an update.
  for (const w of weightInputs) g.inputs.push({ name: w.name, shape: w.shape });
  if (update) {
    spec.variables.forEach((v, i) => {
      for (let j = 0; j < slotCount(update); j++) g.inputs.push({ name: `s${i}_${j}`, shape: v.shape as number[] });
    });
    for (const name of Object.keys(stepScalars(update, 1))) g.inputs.push({ name, shape: [] });
  }
  g.prune();
  return { onnx: encodeModel(g.toModel(OPSET, {}, 'graft_train_step')), dropouts, update, outputs: { loss, correct, ...outputs } };
}

function gradOutputs(g: GraphBuilder, variables: tf.LayerVariable[], grads: string[]): string[] {
  return grads.map((name, i) => {
    const out = g.add('Identity', [name], [], `g${i}`);
    g.outputs.push({ name: out, shape: variables[i]!.shape as number[] });
    return out;
  });
}

/** The updated weights (`nw<i>`) and slots (`ns<i>_<j>`) as outputs, from inputs `w<i>` and `s<i>_<j>`. */
function updateOutputs(g: GraphBuilder, variables: tf.LayerVariable[], grads: string[], rule: UpdateRule) {
  const output = (value: string, name: string, shape: number[]) => {
    const out = g.add('Identity', [value], [], name);
    g.outputs.push({ name: out, shape });
    return out;
  };
  const weights: string[] = [];
  const slots: string[][] = [];
  variables.forEach((v, i) => {
    const shape = v.shape as number[];
    const u = addUpdate(g, rule, `w${i}`, grads[i]!, Array.from({ length: slotCount(rule) }, (_, j) => `s${i}_${j}`));
    weights.push(output(u.weight, `nw${i}`, shape));
    slots.push(u.slots.map((value, j) => output(value, `ns${i}_${j}`, shape)));
  });
  return { grads: [], weights, slots };
}

/** The graph value of a weight: an input where it is trained, a constant otherwise. */
function graphWeight(b: Build, w: StepLayer['weights'][number]): { name: string; index: number | null } {
  const index = b.trained.get(w.variable);
  if (index !== undefined) return { name: `w${index}`, index };
  return { name: b.g.addFloat('const', w.shape, w.value), index: null };
}

/** A gradient at its value's full shape. */
function full(b: Build, dy: string): string {
  const of = b.broadcast.get(dy);
  return of === undefined ? dy : b.g.add('Expand', [dy, b.g.add('Shape', [of])]);
}

/**
 * The trained block, NHWC. A convolution followed by a frozen batch normalization is one convolution with the
 * normalization folded into its kernel and bias (kernel * scale, bias * scale + offset; their gradients are
 * those of the folded ones times scale).
 */
function buildBlock(b: Build, layers: StepLayer[], x: string, inputShape: number[]) {
  let cur = x;
  let shape = [...inputShape];
  let anyTrained = false;
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i]!;
    const trainedHere = layer.weights.some((w) => b.trained.has(w.variable));
    const next = layers[i + 1];
    const isConv = layer.className === 'DepthwiseConv2D' || layer.className === 'Conv2D';
    const bn = isConv && next?.className === 'BatchNormalization' && !next.weights.some((w) => b.trained.has(w.variable)) ? next : null;
    if (bn) {
      checkBatchNorm(bn, b);
      i++;
    }
    const affine = bn ? batchNormAffine(bn) : null;
    switch (layer.className) {
      case 'DepthwiseConv2D':
        if (anyTrained) throw new UnsupportedStepError('a depthwise convolution after a trained layer');
        cur = depthwiseLayer(b, layer, affine, cur, shape);
        break;
      case 'Conv2D':
        ({ cur, shape } = pointwiseLayer(b, layer, affine, cur, shape, anyTrained));
        break;
      case 'BatchNormalization':
        checkBatchNorm(layer, b);
        cur = batchNormLayer(b, batchNormAffine(layer), cur, anyTrained);
        break;
      case 'ReLU':
      case 'Activation':
        cur = activationLayer(b, layer, cur, anyTrained);
        break;
      default:
        throw new UnsupportedStepError(`a ${layer.className} layer in the trained block`);
    }
    anyTrained ||= trainedHere;
  }
  return { cur, shape, anyTrained };
}

type Affine = { scale: Float32Array; offset: Float32Array } | null;

/**
 * A convolution's kernel and bias with a batch normalization folded in (the kernel scaled per output channel,
 * along an axis whose shape `kernelScaleShape` gives), and what turns the gradients of the folded values into
 * those of the layer's own.
 */
function folded(b: Build, kernel: string, bias: string | null, affine: Affine, kernelScaleShape: number[]) {
  const g = b.g;
  if (!affine) return { kernel, bias, kernelGrad: (d: string) => d, biasGrad: (d: string) => d };
  const s = g.addFloat('bn_scale', [affine.scale.length], affine.scale);
  const sk = g.addFloat('bn_scale', kernelScaleShape, affine.scale);
  const offset = g.addFloat('bn_offset', [affine.offset.length], affine.offset);
  return {
    kernel: g.add('Mul', [kernel, sk]),
    bias: bias ? g.add('Add', [g.add('Mul', [bias, s]), offset]) : offset,
    kernelGrad: (d: string) => g.add('Mul', [d, sk]),
    biasGrad: (d: string) => g.add('Mul', [d, s]),
  };
}

function depthwiseLayer(b: Build, layer: StepLayer, affine: Affine, input: string, shape: number[]): string {
  const c = layer.config;
  const k = (c.kernelSize as number[]) ?? [];
  const strides = (c.strides as number[]) ?? [1, 1];
  if (k.length !== 2 || k[0] !== k[1] || k[0]! % 2 !== 1 || strides.some((s) => s !== 1) || c.padding !== 'same') {
    throw new UnsupportedStepError(`depthwise convolution ${JSON.stringify({ k, strides, padding: c.padding })}`);
  }
  if ((c.depthMultiplier ?? 1) !== 1 || (c.dilationRate as number[] | undefined)?.some((d) => d !== 1)) {
    throw new UnsupportedStepError('a depthwise convolution with a depth multiplier or dilation');
  }
  checkLinear(layer);
  const [h, w, ch] = shape as [number, number, number];
  const dims = { k: k[0]!, h, w, c: ch, block: b.nchwcBlock && ch % b.nchwcBlock === 0 ? b.nchwcBlock : null };
  const kernel = graphWeight(b, layer.weights[0]!);
  const bias = layer.weights[1] ? graphWeight(b, layer.weights[1]) : null;
  const f = folded(b, kernel.name, bias?.name ?? null, affine, [ch, 1]); // the kernel is [k, k, C, 1]
  const out = depthwiseForward(b.g, input, f.kernel, f.bias, dims);
  b.tape.push((dy) => {
    const d = full(b, dy);
    if (kernel.index !== null) b.grads[kernel.index] = f.kernelGrad(depthwiseFilterGradient(b.g, input, d, dims));
    if (bias?.index != null) b.grads[bias.index] = f.biasGrad(b.g.add('ReduceSum', [d, b.g.addInt64('axes', [0, 1, 2])], [attr.int('keepdims', 0)]));
    return null;
  });
  return out;
}

/** A 1x1 convolution at stride 1: a product of [n * H * W, Ci] by [Ci, Co]. */
function pointwiseLayer(b: Build, layer: StepLayer, affine: Affine, input: string, shape: number[], needInputGrad: boolean) {
  const g = b.g;
  const c = layer.config;
  const k = c.kernelSize as number[];
  const strides = (c.strides as number[]) ?? [1, 1];
  if (k.some((v) => v !== 1) || strides.some((s) => s !== 1) || (c.dilationRate as number[] | undefined)?.some((d) => d !== 1)) {
    throw new UnsupportedStepError(`convolution ${JSON.stringify({ k, strides })} (only 1x1 at stride 1)`);
  }
  checkLinear(layer);
  const [h, w, ci] = shape as [number, number, number];
  const co = c.filters as number;
  const ints = (v: number[]) => g.addInt64('shape', v);
  const kernel = graphWeight(b, layer.weights[0]!);
  const bias = layer.weights[1] ? graphWeight(b, layer.weights[1]) : null;
  const f = folded(b, g.add('Reshape', [kernel.name, ints([ci, co])]), bias?.name ?? null, affine, [co]);
  const x2 = g.add('Reshape', [input, ints([-1, ci])]);
  const prod = g.add('Gemm', f.bias ? [x2, f.kernel, f.bias] : [x2, f.kernel]);
  b.tape.push((dy) => {
    const d2 = g.add('Reshape', [full(b, dy), ints([-1, co])]);
    if (kernel.index !== null) {
      // x2' d2 with x2 transposed first: MLAS multiplies plain operands faster than with Gemm's transA
      // (step-engine.ts keeps ONNX Runtime from fusing the Transpose back in).
      const gk = g.add('MatMul', [g.add('Transpose', [x2], [attr.ints('perm', [1, 0])]), d2]);
      b.grads[kernel.index] = g.add('Reshape', [f.kernelGrad(gk), ints([1, 1, ci, co])]);
    }
    if (bias?.index != null) b.grads[bias.index] = f.biasGrad(g.add('ReduceSum', [d2, g.addInt64('axes', [0])], [attr.int('keepdims', 0)]));
    if (!needInputGrad) return null;
    return g.add('Reshape', [g.add('Gemm', [d2, f.kernel], [attr.int('transB', 1)]), ints([-1, h, w, ci])]);
  });
  return { cur: g.add('Reshape', [prod, ints([-1, h, w, co])]), shape: [h, w, co] };
}

/** A frozen batch normalization on its own: x * scale + offset. */
function batchNormLayer(b: Build, affine: NonNullable<Affine>, input: string, needInputGrad: boolean): string {
  const g = b.g;
  const a = g.addFloat('bn_scale', [affine.scale.length], affine.scale);
  b.tape.push((dy) => (needInputGrad ? g.add('Mul', [full(b, dy), a]) : null));
  return g.add('Add', [g.add('Mul', [input, a]), g.addFloat('bn_offset', [affine.offset.length], affine.offset)]);
}

/** ReLU (with a maximum or not) or a linear activation; the gradient passes where 0 < x (<= maximum). */
function activationLayer(b: Build, layer: StepLayer, input: string, needInputGrad: boolean): string {
  const g = b.g;
  const max = reluMax(layer);
  const zero = () => g.addScalar('zero', 0);
  b.tape.push((dy) => {
    if (!needInputGrad) return null;
    if (max === -1) return dy;
    let pass = g.add('Greater', [input, zero()]);
    if (max !== null) pass = g.add('And', [pass, g.add('LessOrEqual', [input, g.addScalar('max', max)])]);
    return g.add('Mul', [dy, g.add('Cast', [pass], [attr.int('to', 1)])]);
  });
  if (max === -1) return input; // linear
  return max === null ? g.add('Relu', [input]) : g.add('Clip', [input, zero(), g.addScalar('max', max)]);
}

function checkBatchNorm(layer: StepLayer, b: Build): void {
  if (layer.weights.some((w) => b.trained.has(w.variable))) throw new UnsupportedStepError('a trained batch normalization');
  const axis = (layer.config.axis as number) ?? -1;
  if (axis !== -1 && axis !== 3) throw new UnsupportedStepError(`batch normalization on axis ${axis}`);
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

// Converts a TensorFlow.js layers model (model.json topology + weights) into an ONNX model, straight from the
// Keras JSON topology: no TensorFlow.js runtime is involved.
//
// Layout: the ONNX model takes and returns tensors in the same NHWC order as TF.js. Internally every rank-4
// tensor that feeds a convolution or pooling is kept in NCHW (the order ONNX Conv/Pool use); a Transpose is
// inserted where a value crosses between the two orders (at the input, before Flatten/Reshape/Dense on
// feature maps, and before a rank-4 output).
//
// Names: one model input is called `input` (several: `input_0`, `input_1`, … in the order of the model's
// input layers); one output is called `output` (several: `output_0`, …). The batch dimension is the symbolic
// `batch`; the other dimensions are those of the Keras model (see `convertToOnnx(...).inputs/outputs`).
import type { ErrorCode } from '@graft/contract';
import { attr, GraphBuilder } from './onnx-graph';
import { encodeModel } from './onnx-proto';
import { readWeights, WeightStore, type WeightBytes, type WeightSpec, type WeightsManifestGroup } from './tfjs-weights';

/** Thrown for a layer (or a layer setting) that the converter cannot express; callers fall back to TF.js. */
export class UnsupportedLayerError extends Error {
  readonly code = 'UNSUPPORTED_LAYER' satisfies ErrorCode;
  /** The same model fails the same way on every attempt. */
  readonly permanent = true;
  constructor(
    readonly layerClass: string,
    readonly layerName: string,
    readonly detail?: string,
  ) {
    super(`unsupported layer ${layerClass} "${layerName}"${detail ? `: ${detail}` : ''}`);
    this.name = 'UnsupportedLayerError';
  }
}

export interface OnnxExportOptions {
  /** Name of a layer (at any nesting depth) whose output becomes the model output: a headless feature extractor. */
  outputLayer?: string;
  /** Default-domain opset, 13 to 21 (default 13). */
  opset?: number;
}

export interface OnnxTensorInfo {
  /** Name of the ONNX graph input or output. */
  name: string;
  /** NHWC (Keras) shape; null marks the batch dimension or any other dimension only known at run time. */
  shape: Array<number | null>;
}

export interface OnnxExport {
  model: Uint8Array;
  inputs: OnnxTensorInfo[];
  outputs: OnnxTensorInfo[];
}

/** The parts of a TF.js model.json the converter reads; `weightSpecs` (as in ModelArtifacts) is accepted too. */
export interface TfjsModelJson {
  modelTopology: unknown;
  weightsManifest?: WeightsManifestGroup[];
  weightSpecs?: WeightSpec[];
}

/** Converts a TF.js layers model to ONNX ModelProto bytes. `weights` is the shard data concatenated in manifest order. */
export function exportOnnx(modelJson: object, weights: WeightBytes, opts: OnnxExportOptions = {}): Uint8Array {
  return convertToOnnx(modelJson, weights, opts).model;
}

/** As exportOnnx, and also reports the ONNX graph's input and output names and NHWC shapes. */
export function convertToOnnx(modelJson: object, weights: WeightBytes, opts: OnnxExportOptions = {}): OnnxExport {
  const json = modelJson as TfjsModelJson;
  const opset = opts.opset ?? 13;
  if (!Number.isInteger(opset) || opset < 13 || opset > 21) throw new RangeError(`opset must be an integer from 13 to 21, got ${opset}`);
  const topology = modelTopologyOf(json);
  const specs = json.weightSpecs ?? (json.weightsManifest ?? []).flatMap((group) => group.weights);
  const store = new WeightStore(readWeights(specs, weights));
  const converter = new Converter(store, opts.outputLayer);
  const { inputs, outputs } = converter.convert(topology);
  const g = converter.graph;
  g.foldChannelAffine();
  const metadata: Record<string, string> = {
    'graft.source': 'tfjs-layers',
    'graft.layout': 'NHWC',
    'graft.inputs': JSON.stringify(inputs),
    'graft.outputs': JSON.stringify(outputs),
  };
  if (opts.outputLayer) metadata['graft.output_layer'] = opts.outputLayer;
  const model = encodeModel(g.toModel(opset, metadata, layerName(topology) || 'model'));
  return { model, inputs, outputs };
}

type Dim = number | null;

interface LayerJson {
  class_name: string;
  name?: string;
  config: Record<string, unknown> & { name?: string };
  inbound_nodes?: unknown[];
}

/**
 * A tensor of the Keras graph. `shape` is its Keras (NHWC) shape; `keras` and `nchw` are the names of ONNX
 * values holding it in Keras order or, for rank 4, in NCHW order: at least one is set, the other is made on
 * first use.
 */
interface Value {
  shape: Dim[];
  keras?: string;
  nchw?: string;
}

const MODEL_CLASSES = new Set(['Sequential', 'Model', 'Functional']);
const IDENTITY_CLASSES = new Set(['Dropout', 'SpatialDropout2D', 'GaussianDropout', 'GaussianNoise', 'AlphaDropout', 'ActivityRegularization']);

class CutReached {
  constructor(readonly value: Value) {}
}

function modelTopologyOf(json: TfjsModelJson): LayerJson {
  const topology = json?.modelTopology as Record<string, unknown> | undefined;
  if (!topology || typeof topology !== 'object') throw new Error('model.json has no modelTopology');
  const model = (topology.model_config ?? topology) as LayerJson;
  if (!MODEL_CLASSES.has(model.class_name)) throw new Error(`modelTopology is a ${String(model.class_name)}, expected a Sequential or functional model`);
  return model;
}

function layerName(layer: LayerJson): string {
  return String(layer.name ?? layer.config?.name ?? '');
}

function pair(v: unknown, what: string, layer: LayerJson): [number, number] {
  const arr = Array.isArray(v) ? v : [v, v];
  if (arr.length !== 2 || !arr.every((n) => Number.isInteger(n))) {
    throw new UnsupportedLayerError(layer.class_name, layerName(layer), `${what} ${JSON.stringify(v)}`);
  }
  return [arr[0] as number, arr[1] as number];
}

function sequentialLayers(model: LayerJson): LayerJson[] {
  const config = model.config as unknown;
  return (Array.isArray(config) ? config : (config as { layers: LayerJson[] }).layers) as LayerJson[];
}

/**
 * Node indices in a functional config count a built nested model's own creation node, which is not listed in
 * its inbound_nodes (Keras `_should_skip_first_node`; TF.js does the same), so its listed nodes start at 1.
 */
function nodeIndexOffset(layer: LayerJson): number {
  if (layer.class_name === 'Model' || layer.class_name === 'Functional') return 1;
  if (layer.class_name === 'Sequential') {
    const first = sequentialLayers(layer)[0];
    return first && (first.class_name === 'InputLayer' || batchShapeOf(first) || MODEL_CLASSES.has(first.class_name)) ? 1 : 0;
  }
  return 0;
}

function batchShapeOf(layer: LayerJson): Dim[] | undefined {
  const c = layer.config ?? {};
  const shape = (c.batch_input_shape ?? c.batch_shape) as Dim[] | undefined;
  if (shape) return shape.map((d) => (d === undefined ? null : d));
  if (Array.isArray(c.input_shape)) return [null, ...(c.input_shape as Dim[])];
  return undefined;
}

/** Collects [layer, node, tensor] references from one inbound node (Keras 2 list form or Keras 3 args form). */
function inboundRefs(node: unknown): Array<[string, number, number]> {
  const refs: Array<[string, number, number]> = [];
  if (Array.isArray(node) && node.every((e) => Array.isArray(e) && typeof e[0] === 'string')) {
    for (const e of node as unknown[][]) refs.push([e[0] as string, Number(e[1] ?? 0), Number(e[2] ?? 0)]);
    return refs;
  }
  const visit = (x: unknown): void => {
    if (Array.isArray(x)) x.forEach(visit);
    else if (x && typeof x === 'object') {
      const o = x as Record<string, unknown>;
      const history = (o.config as Record<string, unknown> | undefined)?.keras_history;
      if (o.class_name === '__keras_tensor__' && Array.isArray(history)) {
        refs.push([history[0] as string, Number(history[1]), Number(history[2])]);
      } else if (o.args !== undefined) visit(o.args);
    }
  };
  visit(node);
  return refs;
}

function broadcastShape(shapes: Dim[][]): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i];
      if (v === undefined || v === 1) continue;
      d = v === null || d === null ? null : Math.max(d, v);
    }
    out.push(i === 0 ? null : d);
  }
  return out;
}

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];
/** Keras (NHWC) axis -> NCHW axis. */
const NCHW_AXIS = [0, 2, 3, 1];

class Converter {
  readonly graph = new GraphBuilder();
  private cut?: Value;

  constructor(
    private readonly weights: WeightStore,
    private readonly outputLayer?: string,
  ) {}

  convert(model: LayerJson): { inputs: Array<{ name: string; shape: Dim[] }>; outputs: Array<{ name: string; shape: Dim[] }> } {
    const g = this.graph;
    const inputShapes = this.inputShapesOf(model);
    const inputs = inputShapes.map((shape, i) => {
      const name = g.addInput(inputShapes.length === 1 ? 'input' : `input_${i}`, [null, ...shape.slice(1)]);
      return { name, shape: [null, ...shape.slice(1)] };
    });
    const outputCount = this.outputLayer || model.class_name === 'Sequential' ? 1 : (model.config.output_layers as unknown[]).length;
    const outputNames = Array.from({ length: outputCount }, (_, i) => g.unique(outputCount === 1 ? 'output' : `output_${i}`));

    let results: Value[];
    try {
      results = this.applyModel(model, inputs.map((io) => ({ shape: io.shape, keras: io.name })));
      if (this.outputLayer) throw new Error(`layer "${this.outputLayer}" not found in the model`);
    } catch (e) {
      if (!(e instanceof CutReached)) throw e;
      results = [e.value];
    }
    if (results.length !== outputNames.length) throw new Error(`model produced ${results.length} outputs, expected ${outputNames.length}`);
    const outputs = results.map((v, i) => {
      const source = this.toKeras(v);
      g.nodes.push({ op: 'Identity', inputs: [source], outputs: [outputNames[i]], attrs: [], name: g.unique(`${outputNames[i]}/Identity`) });
      const io = { name: outputNames[i], shape: [null, ...v.shape.slice(1)] };
      g.outputs.push(io);
      return io;
    });
    g.prune();
    return { inputs, outputs };
  }

  /** Keras input shapes (with batch) of a model, looking through a nested model in first position. */
  private inputShapesOf(model: LayerJson): Dim[][] {
    if (model.class_name === 'Sequential') {
      const first = sequentialLayers(model)[0];
      if (!first) throw new Error(`Sequential model "${layerName(model)}" has no layers`);
      if (MODEL_CLASSES.has(first.class_name)) return this.inputShapesOf(first);
      const shape = batchShapeOf(first);
      if (!shape) throw new Error(`Sequential model "${layerName(model)}" does not declare its input shape`);
      return [shape];
    }
    const layers = new Map((model.config.layers as LayerJson[]).map((l) => [layerName(l), l]));
    return (model.config.input_layers as Array<[string, number, number]>).map(([name]) => {
      const layer = layers.get(name);
      const shape = layer && batchShapeOf(layer);
      if (!shape) throw new Error(`input layer "${name}" does not declare its shape`);
      return shape;
    });
  }

  private applyModel(model: LayerJson, inputs: Value[]): Value[] {
    if (model.class_name === 'Sequential') {
      let current = inputs;
      for (const layer of sequentialLayers(model)) {
        current = layer.class_name === 'InputLayer' ? current : this.applyLayer(layer, current);
      }
      this.noteOutput(layerName(model), current);
      return current;
    }
    const config = model.config as { layers: LayerJson[]; input_layers: Array<[string, number, number]>; output_layers: Array<[string, number, number]> };
    const tensors = new Map<string, Value>();
    const key = (name: string, node: number, tensor: number) => `${name}:${node}:${tensor}`;
    if (config.input_layers.length !== inputs.length) {
      throw new Error(`model "${layerName(model)}" takes ${config.input_layers.length} inputs, given ${inputs.length}`);
    }
    config.input_layers.forEach(([name, node, tensor], i) => {
      tensors.set(key(name, node, tensor), inputs[i]);
      this.noteOutput(name, [inputs[i]]);
    });
    let pending = config.layers.flatMap((layer) =>
      layer.class_name === 'InputLayer' ? [] : (layer.inbound_nodes ?? []).map((node, index) => ({ layer, index, refs: inboundRefs(node) })),
    );
    while (pending.length > 0) {
      const waiting: typeof pending = [];
      for (const item of pending) {
        const args = item.refs.map(([n, node, t]) => tensors.get(key(n, node, t)));
        if (args.some((a) => a === undefined)) {
          waiting.push(item);
          continue;
        }
        const outs = this.applyLayer(item.layer, args as Value[]);
        const node = item.index + nodeIndexOffset(item.layer);
        outs.forEach((v, t) => tensors.set(key(layerName(item.layer), node, t), v));
      }
      if (waiting.length === pending.length) {
        throw new Error(`model "${layerName(model)}": cannot resolve the inputs of ${waiting.map((w) => layerName(w.layer)).join(', ')}`);
      }
      pending = waiting;
    }
    const outputs = config.output_layers.map(([name, node, tensor]) => {
      const v = tensors.get(key(name, node, tensor));
      if (!v) throw new Error(`model "${layerName(model)}": output ${name} was not computed`);
      return v;
    });
    this.noteOutput(layerName(model), outputs);
    return outputs;
  }

  private noteOutput(name: string, values: Value[]): void {
    if (this.outputLayer !== undefined && name === this.outputLayer && !this.cut) {
      this.cut = values[0];
      throw new CutReached(values[0]);
    }
  }

  private applyLayer(layer: LayerJson, inputs: Value[]): Value[] {
    const name = layerName(layer);
    if (MODEL_CLASSES.has(layer.class_name)) return this.applyModel(layer, inputs);
    const format = layer.config?.data_format;
    if (format !== undefined && format !== null && format !== 'channels_last') {
      throw new UnsupportedLayerError(layer.class_name, name, `data_format ${String(format)}`);
    }
    const outputs = [this.convertLayer(layer, inputs)];
    this.noteOutput(name, outputs);
    return outputs;
  }

  private convertLayer(layer: LayerJson, inputs: Value[]): Value {
    const x = inputs[0];
    const c = layer.config;
    const name = layerName(layer);
    const unsupported = (detail?: string) => new UnsupportedLayerError(layer.class_name, name, detail);
    if (IDENTITY_CLASSES.has(layer.class_name)) return x;
    switch (layer.class_name) {
      case 'InputLayer':
        return x;
      case 'Conv2D':
        return this.conv2d(layer, x);
      case 'DepthwiseConv2D':
        return this.depthwiseConv2d(layer, x);
      case 'SeparableConv2D':
        return this.separableConv2d(layer, x);
      case 'BatchNormalization':
        return this.batchNorm(layer, x);
      case 'Dense':
        return this.dense(layer, x);
      case 'Activation':
        return this.activation(x, c.activation, layer);
      case 'ReLU': {
        const max = c.max_value ?? null;
        const slope = Number(c.negative_slope ?? 0);
        const threshold = Number(c.threshold ?? 0);
        if (threshold !== 0) throw unsupported(`threshold ${threshold}`);
        if (max === null) return slope === 0 ? this.unary(x, 'Relu', name) : this.unary(x, 'LeakyRelu', name, [attr.float('alpha', slope)]);
        if (slope !== 0) throw unsupported('max_value together with negative_slope');
        return this.clip(x, 0, Number(max), name);
      }
      case 'LeakyReLU':
        return this.unary(x, 'LeakyRelu', name, [attr.float('alpha', Number(c.alpha ?? c.negative_slope ?? 0.3))]);
      case 'ELU':
        return this.unary(x, 'Elu', name, [attr.float('alpha', Number(c.alpha ?? 1))]);
      case 'Softmax': {
        if (Array.isArray(c.axis) && c.axis.length !== 1) throw unsupported(`axis ${JSON.stringify(c.axis)}`);
        const axis = Number(Array.isArray(c.axis) ? c.axis[0] : (c.axis ?? -1));
        return this.softmax(x, axis, name);
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D':
        return this.pool(layer, x);
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        if (x.shape.length !== 4) throw unsupported(`input of rank ${x.shape.length}`);
        const op = layer.class_name === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool';
        const pooled = this.graph.add(op, [this.toNchw(x)], [], name);
        if (c.keepdims) return { shape: [x.shape[0], 1, 1, x.shape[3]], nchw: pooled };
        return { shape: [x.shape[0], x.shape[3]], keras: this.graph.add('Flatten', [pooled], [attr.int('axis', 1)], `${name}/flatten`) };
      }
      case 'ZeroPadding2D': {
        if (x.shape.length !== 4) throw unsupported(`input of rank ${x.shape.length}`);
        const p = c.padding;
        let top: number, bottom: number, left: number, right: number;
        if (Array.isArray(p) && Array.isArray(p[0])) {
          [top, bottom] = pair(p[0], 'padding', layer);
          [left, right] = pair(p[1], 'padding', layer);
        } else {
          [top, left] = pair(p, 'padding', layer);
          [bottom, right] = [top, left];
        }
        const pads = this.graph.addInt64(`${name}/pads`, [0, 0, top, left, 0, 0, bottom, right]);
        const out = this.graph.add('Pad', [this.toNchw(x), pads], [], name);
        const grow = (d: Dim, by: number) => (d === null ? null : d + by);
        return { shape: [x.shape[0], grow(x.shape[1], top + bottom), grow(x.shape[2], left + right), x.shape[3]], nchw: out };
      }
      case 'Add':
      case 'Subtract':
      case 'Multiply':
      case 'Average':
      case 'Maximum':
      case 'Minimum':
        return this.merge(layer, inputs);
      case 'Concatenate':
        return this.concatenate(layer, inputs);
      case 'Flatten': {
        if (x.shape.length <= 2) return x;
        const rest = x.shape.slice(1);
        const size = rest.every((d) => d !== null) ? (rest as number[]).reduce((a, b) => a * b, 1) : null;
        return { shape: [x.shape[0], size], keras: this.graph.add('Flatten', [this.toKeras(x)], [attr.int('axis', 1)], name) };
      }
      case 'Reshape': {
        const target = (c.target_shape as number[]).map(Number);
        if (target.some((d) => !Number.isInteger(d) || d === 0 || d < -1)) throw unsupported(`target_shape ${JSON.stringify(target)}`);
        const shape = this.graph.addInt64(`${name}/shape`, [0, ...target]);
        const out = this.graph.add('Reshape', [this.toKeras(x), shape], [], name);
        const known = x.shape.slice(1).every((d) => d !== null) ? (x.shape.slice(1) as number[]).reduce((a, b) => a * b, 1) : null;
        const fixed = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        const resolved = target.map((d) => (d === -1 ? (known === null ? null : known / fixed) : d));
        return { shape: [x.shape[0], ...resolved], keras: out };
      }
      case 'Rescaling': {
        const scale = Number(c.scale ?? 1);
        const offset = Number(c.offset ?? 0);
        if (!Number.isFinite(scale) || !Number.isFinite(offset)) throw unsupported('non-scalar scale or offset');
        const { value, layout } = this.primary(x);
        let out = value;
        if (scale !== 1) out = this.graph.add('Mul', [out, this.graph.addScalar(`${name}/scale`, scale)], [], name);
        if (offset !== 0) out = this.graph.add('Add', [out, this.graph.addScalar(`${name}/offset`, offset)], [], name);
        return { shape: x.shape, [layout]: out };
      }
      default:
        throw unsupported();
    }
  }

  // ---- layout ----

  private toNchw(v: Value): string {
    if (v.nchw) return v.nchw;
    if (v.shape.length !== 4) throw new Error(`internal: NCHW requested for a rank-${v.shape.length} value`);
    v.nchw = this.graph.add('Transpose', [v.keras!], [attr.ints('perm', TO_NCHW)], `${v.keras}/nchw`);
    return v.nchw;
  }

  private toKeras(v: Value): string {
    if (v.keras) return v.keras;
    v.keras = this.graph.add('Transpose', [v.nchw!], [attr.ints('perm', TO_NHWC)], `${v.nchw}/nhwc`);
    return v.keras;
  }

  /** The value's existing ONNX tensor, preferring NCHW for rank 4: element-wise ops keep whichever order they get. */
  private primary(v: Value): { value: string; layout: 'keras' | 'nchw' } {
    return v.nchw ? { value: v.nchw, layout: 'nchw' } : { value: v.keras!, layout: 'keras' };
  }

  private channelAxis(v: Value, layout: 'keras' | 'nchw'): number {
    return layout === 'nchw' ? 1 : v.shape.length - 1;
  }

  // ---- element-wise ----

  private unary(x: Value, op: string, name: string, attrs = [] as ReturnType<typeof attr.int>[]): Value {
    const { value, layout } = this.primary(x);
    return { shape: x.shape, [layout]: this.graph.add(op, [value], attrs, name) };
  }

  private clip(x: Value, min: number, max: number, name: string): Value {
    const { value, layout } = this.primary(x);
    const lo = this.graph.addScalar(`${name}/min`, min);
    const hi = this.graph.addScalar(`${name}/max`, max);
    return { shape: x.shape, [layout]: this.graph.add('Clip', [value, lo, hi], [], name) };
  }

  private softmax(x: Value, kerasAxis: number, name: string): Value {
    const rank = x.shape.length;
    const axis = kerasAxis < 0 ? kerasAxis + rank : kerasAxis;
    if (x.nchw) {
      return { shape: x.shape, nchw: this.graph.add('Softmax', [x.nchw], [attr.int('axis', NCHW_AXIS[axis])], name) };
    }
    return { shape: x.shape, keras: this.graph.add('Softmax', [x.keras!], [attr.int('axis', axis)], name) };
  }

  private activation(x: Value, activation: unknown, layer: LayerJson): Value {
    const name = `${layerName(layer)}/${String(activation)}`;
    switch (activation) {
      case undefined:
      case null:
      case 'linear':
        return x;
      case 'relu':
        return this.unary(x, 'Relu', name);
      case 'relu6':
        return this.clip(x, 0, 6, name);
      case 'sigmoid':
        return this.unary(x, 'Sigmoid', name);
      case 'tanh':
        return this.unary(x, 'Tanh', name);
      case 'softmax':
        return this.softmax(x, -1, name);
      case 'elu':
        return this.unary(x, 'Elu', name);
      case 'selu':
        return this.unary(x, 'Selu', name);
      case 'softplus':
        return this.unary(x, 'Softplus', name);
      case 'softsign':
        return this.unary(x, 'Softsign', name);
      case 'exponential':
        return this.unary(x, 'Exp', name);
      case 'hard_sigmoid':
      case 'hardSigmoid':
        return this.unary(x, 'HardSigmoid', name, [attr.float('alpha', 0.2), attr.float('beta', 0.5)]);
      case 'swish':
      case 'silu': {
        const { value, layout } = this.primary(x);
        const gate = this.graph.add('Sigmoid', [value], [], `${name}/sigmoid`);
        return { shape: x.shape, [layout]: this.graph.add('Mul', [value, gate], [], name) };
      }
      default:
        throw new UnsupportedLayerError(layer.class_name, layerName(layer), `activation ${JSON.stringify(activation)}`);
    }
  }

  // ---- convolutions ----

  /** Pads (ONNX order: begin H, begin W, end H, end W) or auto_pad, and output size, of a 2-D window. */
  private window(
    x: Value,
    kernel: [number, number],
    strides: [number, number],
    dilation: [number, number],
    padding: unknown,
    layer: LayerJson,
  ): { attrs: ReturnType<typeof attr.ints>[]; out: [Dim, Dim] } {
    const size = [x.shape[1], x.shape[2]];
    const effective = [0, 1].map((i) => (kernel[i] - 1) * dilation[i] + 1);
    if (padding === 'valid') {
      const out = [0, 1].map((i) => {
        const d = size[i];
        return d === null ? null : Math.floor((d - effective[i]) / strides[i]) + 1;
      }) as [Dim, Dim];
      if (out.some((d) => d !== null && d <= 0)) throw new Error(`layer ${layerName(layer)}: window larger than its input`);
      return { attrs: [attr.ints('pads', [0, 0, 0, 0])], out };
    }
    if (padding !== 'same') throw new UnsupportedLayerError(layer.class_name, layerName(layer), `padding ${String(padding)}`);
    if (size[0] === null || size[1] === null) {
      // ONNX SAME_UPPER puts the odd pixel of padding at the end, as TensorFlow does.
      return { attrs: [attr.string('auto_pad', 'SAME_UPPER')], out: [null, null] };
    }
    const begin: number[] = [];
    const end: number[] = [];
    const out = [0, 1].map((i) => {
      const d = size[i] as number;
      const o = Math.ceil(d / strides[i]);
      const total = Math.max((o - 1) * strides[i] + effective[i] - d, 0);
      begin.push(Math.floor(total / 2));
      end.push(total - Math.floor(total / 2));
      return o;
    }) as [Dim, Dim];
    return { attrs: [attr.ints('pads', [...begin, ...end])], out };
  }

  private convAttrs(layer: LayerJson, x: Value, kernel: [number, number]) {
    const c = layer.config;
    const strides = pair(c.strides ?? 1, 'strides', layer);
    const dilation = pair(c.dilation_rate ?? 1, 'dilation_rate', layer);
    const { attrs, out } = this.window(x, kernel, strides, dilation, c.padding ?? 'valid', layer);
    return {
      attrs: [attr.ints('kernel_shape', kernel), attr.ints('strides', strides), attr.ints('dilations', dilation), ...attrs],
      out,
    };
  }

  private requireRank4(layer: LayerJson, x: Value): number {
    if (x.shape.length !== 4) throw new UnsupportedLayerError(layer.class_name, layerName(layer), `input of rank ${x.shape.length}`);
    const channels = x.shape[3];
    if (channels === null) throw new UnsupportedLayerError(layer.class_name, layerName(layer), 'unknown channel count');
    return channels;
  }

  private bias(layer: LayerJson, units: number): string | undefined {
    if (layer.config.use_bias === false) return undefined;
    const name = layerName(layer);
    const b = this.weights.get(name, 'bias', [units]);
    return this.graph.addFloat(`${name}/bias`, [units], b.data);
  }

  private conv2d(layer: LayerJson, x: Value): Value {
    const name = layerName(layer);
    const cin = this.requireRank4(layer, x);
    const c = layer.config;
    const filters = Number(c.filters);
    const groups = Number(c.groups ?? 1);
    const [kh, kw] = pair(c.kernel_size, 'kernel_size', layer);
    const k = this.weights.get(name, 'kernel', [kh, kw, cin / groups, filters]);
    const w = this.graph.addFloat(`${name}/kernel`, [filters, cin / groups, kh, kw], hwioToOihw(k.data, kh, kw, cin / groups, filters));
    const b = this.bias(layer, filters);
    const { attrs, out } = this.convAttrs(layer, x, [kh, kw]);
    const y = this.graph.add('Conv', [this.toNchw(x), w, ...(b ? [b] : [])], [...attrs, attr.int('group', groups)], name);
    return this.activation({ shape: [x.shape[0], out[0], out[1], filters], nchw: y }, c.activation, layer);
  }

  private depthwise(layer: LayerJson, x: Value, cin: number, withBias: boolean): Value {
    const name = layerName(layer);
    const c = layer.config;
    const m = Number(c.depth_multiplier ?? 1);
    const [kh, kw] = pair(c.kernel_size, 'kernel_size', layer);
    const k = this.weights.get(name, 'depthwise_kernel', [kh, kw, cin, m]);
    // [kh, kw, cin, m] -> [cin * m, 1, kh, kw]; output channel c * m + j reads input channel c.
    const data = new Float32Array(k.data.length);
    for (let y = 0; y < kh; y++)
      for (let xx = 0; xx < kw; xx++)
        for (let ch = 0; ch < cin; ch++)
          for (let j = 0; j < m; j++) data[((ch * m + j) * kh + y) * kw + xx] = k.data[((y * kw + xx) * cin + ch) * m + j];
    const w = this.graph.addFloat(`${name}/depthwise_kernel`, [cin * m, 1, kh, kw], data);
    const b = withBias ? this.bias(layer, cin * m) : undefined;
    const { attrs, out } = this.convAttrs(layer, x, [kh, kw]);
    const y = this.graph.add('Conv', [this.toNchw(x), w, ...(b ? [b] : [])], [...attrs, attr.int('group', cin)], withBias ? name : `${name}/depthwise`);
    return { shape: [x.shape[0], out[0], out[1], cin * m], nchw: y };
  }

  private depthwiseConv2d(layer: LayerJson, x: Value): Value {
    const cin = this.requireRank4(layer, x);
    return this.activation(this.depthwise(layer, x, cin, true), layer.config.activation, layer);
  }

  private separableConv2d(layer: LayerJson, x: Value): Value {
    const name = layerName(layer);
    const cin = this.requireRank4(layer, x);
    const c = layer.config;
    const filters = Number(c.filters);
    const dw = this.depthwise(layer, x, cin, false);
    const mid = dw.shape[3] as number;
    const k = this.weights.get(name, 'pointwise_kernel', [1, 1, mid, filters]);
    const w = this.graph.addFloat(`${name}/pointwise_kernel`, [filters, mid, 1, 1], hwioToOihw(k.data, 1, 1, mid, filters));
    const b = this.bias(layer, filters);
    const y = this.graph.add('Conv', [dw.nchw!, w, ...(b ? [b] : [])], [attr.ints('kernel_shape', [1, 1])], name);
    return this.activation({ shape: [x.shape[0], dw.shape[1], dw.shape[2], filters], nchw: y }, c.activation, layer);
  }

  private pool(layer: LayerJson, x: Value): Value {
    const name = layerName(layer);
    this.requireRank4(layer, x);
    const c = layer.config;
    const size = pair(c.pool_size ?? 2, 'pool_size', layer);
    const strides = pair(c.strides ?? size, 'strides', layer);
    const { attrs, out } = this.window(x, size, strides, [1, 1], c.padding ?? 'valid', layer);
    const op = layer.class_name === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool';
    // AveragePool's default count_include_pad=0 averages over the pixels inside the image, as TensorFlow does.
    const y = this.graph.add(op, [this.toNchw(x)], [attr.ints('kernel_shape', size), attr.ints('strides', strides), ...attrs], name);
    return { shape: [x.shape[0], out[0], out[1], x.shape[3]], nchw: y };
  }

  // ---- normalisation and dense ----

  private batchNorm(layer: LayerJson, x: Value): Value {
    const name = layerName(layer);
    const c = layer.config;
    const rank = x.shape.length;
    const axes = Array.isArray(c.axis) ? (c.axis as number[]) : [Number(c.axis ?? -1)];
    if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== rank - 1)) {
      throw new UnsupportedLayerError(layer.class_name, name, `axis ${JSON.stringify(c.axis)}`);
    }
    const channels = x.shape[rank - 1];
    if (channels === null) throw new UnsupportedLayerError(layer.class_name, name, 'unknown channel count');
    const eps = Number(c.epsilon ?? 1e-3);
    const gamma = c.scale === false ? undefined : this.weights.get(name, 'gamma', [channels]).data;
    const beta = c.center === false ? undefined : this.weights.get(name, 'beta', [channels]).data;
    const mean = this.weights.get(name, 'moving_mean', [channels]).data;
    const variance = this.weights.get(name, 'moving_variance', [channels]).data;
    const scale = new Float32Array(channels);
    const shift = new Float32Array(channels);
    for (let i = 0; i < channels; i++) {
      const s = (gamma ? gamma[i] : 1) / Math.sqrt(variance[i] + eps);
      scale[i] = s;
      shift[i] = (beta ? beta[i] : 0) - mean[i] * s;
    }
    const { value, layout } = this.primary(x);
    const dims = layout === 'nchw' ? [channels, 1, 1] : [channels];
    const mul = this.graph.add('Mul', [value, this.graph.addFloat(`${name}/scale`, dims, scale)], [], `${name}/mul`);
    const add = this.graph.add('Add', [mul, this.graph.addFloat(`${name}/shift`, dims, shift)], [], name);
    return { shape: x.shape, [layout]: add };
  }

  private dense(layer: LayerJson, x: Value): Value {
    const name = layerName(layer);
    const units = Number(layer.config.units);
    const inUnits = x.shape[x.shape.length - 1];
    if (inUnits === null || x.shape.length < 2) throw new UnsupportedLayerError(layer.class_name, name, 'unknown input size');
    const k = this.weights.get(name, 'kernel', [inUnits, units]);
    const w = this.graph.addFloat(`${name}/kernel`, [inUnits, units], k.data);
    const b = this.bias(layer, units);
    const shape = [...x.shape.slice(0, -1), units];
    let y: string;
    if (x.shape.length === 2) {
      y = this.graph.add('Gemm', [this.toKeras(x), w, ...(b ? [b] : [])], [], name);
    } else {
      y = this.graph.add('MatMul', [this.toKeras(x), w], [], b ? `${name}/matmul` : name);
      if (b) y = this.graph.add('Add', [y, b], [], name);
    }
    return this.activation({ shape, keras: y }, layer.config.activation, layer);
  }

  // ---- merges ----

  /** Brings all inputs to one order: NCHW when all are rank 4 and one already is, else Keras order. */
  private align(inputs: Value[]): { names: string[]; layout: 'keras' | 'nchw' } {
    const nchw = inputs.every((v) => v.shape.length === 4) && inputs.some((v) => v.nchw);
    return nchw
      ? { names: inputs.map((v) => this.toNchw(v)), layout: 'nchw' }
      : { names: inputs.map((v) => this.toKeras(v)), layout: 'keras' };
  }

  private merge(layer: LayerJson, inputs: Value[]): Value {
    const name = layerName(layer);
    if (inputs.length < 2) throw new UnsupportedLayerError(layer.class_name, name, `${inputs.length} inputs`);
    const { names, layout } = this.align(inputs);
    const shape = broadcastShape(inputs.map((v) => v.shape));
    let out: string;
    switch (layer.class_name) {
      case 'Add':
        out = this.graph.add('Sum', names, [], name);
        break;
      case 'Average':
        out = this.graph.add('Mean', names, [], name);
        break;
      case 'Maximum':
        out = this.graph.add('Max', names, [], name);
        break;
      case 'Minimum':
        out = this.graph.add('Min', names, [], name);
        break;
      case 'Subtract':
        if (names.length !== 2) throw new UnsupportedLayerError(layer.class_name, name, `${names.length} inputs`);
        out = this.graph.add('Sub', names, [], name);
        break;
      default:
        out = names.slice(1).reduce((acc, n, i) => this.graph.add('Mul', [acc, n], [], i === names.length - 2 ? name : `${name}/mul`), names[0]);
    }
    return { shape, [layout]: out };
  }

  private concatenate(layer: LayerJson, inputs: Value[]): Value {
    const name = layerName(layer);
    const rank = inputs[0].shape.length;
    if (inputs.some((v) => v.shape.length !== rank)) throw new UnsupportedLayerError(layer.class_name, name, 'inputs of different ranks');
    const kerasAxis = Number(layer.config.axis ?? -1);
    const axis = kerasAxis < 0 ? kerasAxis + rank : kerasAxis;
    if (axis <= 0 || axis >= rank) throw new UnsupportedLayerError(layer.class_name, name, `axis ${kerasAxis}`);
    const { names, layout } = this.align(inputs);
    const shape = inputs[0].shape.slice();
    shape[axis] = inputs.some((v) => v.shape[axis] === null) ? null : inputs.reduce((s, v) => s + (v.shape[axis] as number), 0);
    const onnxAxis = layout === 'nchw' ? NCHW_AXIS[axis] : axis;
    return { shape, [layout]: this.graph.add('Concat', names, [attr.int('axis', onnxAxis)], name) };
  }
}

/** Keras kernel [kh, kw, in, out] -> ONNX [out, in, kh, kw]. */
function hwioToOihw(src: Float32Array, kh: number, kw: number, cin: number, cout: number): Float32Array {
  const dst = new Float32Array(src.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) dst[((o * cin + i) * kh + y) * kw + x] = src[((y * kw + x) * cin + i) * cout + o];
  return dst;
}

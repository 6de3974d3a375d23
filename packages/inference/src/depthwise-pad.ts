// Depthwise convolutions of an int8 model padded to a multiple of 16 channels. ONNX Runtime runs an int8 depthwise
// convolution on MLAS's symmetric kernels only where its channels are a multiple of 16 (MlasConvSymPackWSize); with
// another count it takes a generic kernel at about half the speed per multiply-add (MobileNet v1 0.75's first
// depthwise convolution, 24 channels at 144x144 px for a 288 px image: 15% of the int8 pass, twice the CPU per
// multiply-add of its third, 96 channels). Padded, the convolution before it gets output channels of zero weights and
// zero bias, the depthwise one as many channels of zero weights, and the convolution after it input channels of zero
// weights: the extra channels hold zeros all the way, and the outputs are the same bit for bit.
import { initializerNamed, intAttribute, scalarValue, TensorDataType, writerOf, type OnnxModel, type OnnxNode, type OnnxTensor } from './onnx-proto';

/** The channel count MLAS's fast int8 depthwise kernels need a multiple of. */
const GROUP_ALIGN = 16;

/** Pads every depthwise convolution of `model` (QDQ int8, as quantizeOnnx writes it) that it can; how many it padded. */
export function padDepthwise(model: OnnxModel): number {
  let padded = 0;
  for (const conv of model.graph.node.filter((n) => n.op_type === 'Conv' && !n.domain)) if (padOne(model, conv)) padded++;
  return padded;
}

interface QuantizedConv {
  node: OnnxNode;
  weights: OnnxTensor;
  weightScales: OnnxTensor;
  weightZeros: OnnxTensor;
  bias: OnnxTensor | null;
  biasScales: OnnxTensor | null;
  biasZeros: OnnxTensor | null;
  /** The scale of the activations it reads (one for the tensor). */
  inputScale: number;
}

function padOne(model: OnnxModel, dw: OnnxNode): boolean {
  const g = model.graph;
  const outputs = new Set(g.output.map((o) => o.name));
  // A tensor whose channels change: read by nothing else, and not an output of the model.
  const readers = (name: string) => (outputs.has(name) ? [] : g.node.filter((n) => n.input.includes(name)));
  const writer = (name: string) => g.node.find((n) => n.output.includes(name));
  const depthwise = quantizedConv(model, dw);
  const channels = depthwise ? Number(depthwise.weights.dims[0]) : 0;
  if (!depthwise || intAttribute(dw, 'group', 1) !== channels || channels % GROUP_ALIGN === 0 || Number(depthwise.weights.dims[1]) !== 1) return false;
  // Before it: a group-1 int8 Conv, then only per-tensor elementwise steps (Clip, QuantizeLinear, DequantizeLinear).
  let name = dw.input[0]!;
  let node = writer(name);
  while (node && node.op_type !== 'Conv' && elementwise(model, node) && readers(name).length === 1) node = writer((name = node.input[0]!));
  const before = node && node.op_type === 'Conv' && readers(name).length === 1 ? quantizedConv(model, node) : null;
  if (!before || intAttribute(before.node, 'group', 1) !== 1 || Number(before.weights.dims[0]) !== channels) return false;
  // After it: the same steps, then a group-1 int8 Conv, its only reader.
  name = dw.output[0]!;
  let next = readers(name);
  while (next.length === 1 && next[0]!.op_type !== 'Conv' && elementwise(model, next[0]!)) next = readers((name = next[0]!.output[0]!));
  const after = next.length === 1 && next[0]!.op_type === 'Conv' && next[0]!.input[0] === name ? quantizedConv(model, next[0]!) : null;
  if (!after || intAttribute(after.node, 'group', 1) !== 1 || Number(after.weights.dims[1]) !== channels) return false;

  const to = Math.ceil(channels / GROUP_ALIGN) * GROUP_ALIGN;
  for (const c of [before, depthwise]) {
    padAxis(c.weights, 0, to);
    padAxis(c.weightScales, 0, to, 1);
    padAxis(c.weightZeros, 0, to);
    if (c.bias && c.biasScales && c.biasZeros) {
      padAxis(c.bias, 0, to);
      // A bias's scale is its input's times its weights' (1 here): ONNX Runtime fuses the convolution only so.
      padAxis(c.biasScales, 0, to, Math.fround(c.inputScale));
      padAxis(c.biasZeros, 0, to);
    }
  }
  padAxis(after.weights, 1, to);
  dw.attribute.find((a) => a.name === 'group')!.i = to;
  return true;
}

/** A Conv whose weights (int8, one scale per output channel) and bias (int32, if any) are DequantizeLinear of initializers. */
function quantizedConv(model: OnnxModel, node: OnnxNode): QuantizedConv | null {
  const g = model.graph;
  const dequantized = (name: string | undefined) => {
    const dq = writerOf(g, name, 'DequantizeLinear');
    if (!dq || g.node.filter((n) => n.input.includes(name!)).length !== 1) return null;
    const [values, scales, zeros] = [initializerNamed(g, dq.input[0]), initializerNamed(g, dq.input[1]), initializerNamed(g, dq.input[2])];
    if (!values || !scales || !zeros || intAttribute(dq, 'axis', 1) !== 0 || scales.dims.length !== 1) return null;
    if (g.node.some((n) => n !== dq && n.input.some((i) => i === values.name || i === scales.name || i === zeros.name))) return null;
    return { values, scales, zeros };
  };
  const w = dequantized(node.input[1]);
  if (!w || w.values.data_type !== TensorDataType.INT8 || w.values.dims.length !== 4) return null;
  const b = node.input[2] === undefined ? null : dequantized(node.input[2]);
  if (node.input[2] !== undefined && (!b || b.values.data_type !== TensorDataType.INT32)) return null;
  const input = writerOf(g, node.input[0], 'DequantizeLinear');
  const inputScale = input ? scalarValue(initializerNamed(g, input.input[1]), TensorDataType.FLOAT) : NaN;
  if (!Number.isFinite(inputScale)) return null;
  return { node, weights: w.values, weightScales: w.scales, weightZeros: w.zeros, bias: b?.values ?? null, biasScales: b?.scales ?? null, biasZeros: b?.zeros ?? null, inputScale };
}

/** Clip, or a QuantizeLinear / DequantizeLinear with one scale for the tensor: they treat every channel alike. */
function elementwise(model: OnnxModel, node: OnnxNode): boolean {
  if (node.domain) return false;
  if (node.op_type === 'Clip' || node.op_type === 'Relu') return true;
  if (node.op_type !== 'QuantizeLinear' && node.op_type !== 'DequantizeLinear') return false;
  return initializerNamed(model.graph, node.input[1])?.dims.length === 0;
}

const ELEMENT_BYTES: Record<number, number> = { [TensorDataType.FLOAT]: 4, [TensorDataType.INT8]: 1, [TensorDataType.UINT8]: 1, [TensorDataType.INT32]: 4 };

/** `t` padded along `axis` to `to` entries: zeros, or `fill` (float32 tensors). */
function padAxis(t: OnnxTensor, axis: number, to: number, fill?: number): void {
  const size = ELEMENT_BYTES[t.data_type];
  if (size === undefined) throw new Error(`cannot pad a tensor of type ${t.data_type}`);
  const dims = t.dims.map(Number);
  const from = dims[axis]!;
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1) * size;
  const out = new Uint8Array(outer * to * inner);
  const filler = fill === undefined ? null : new Uint8Array(Float32Array.of(fill).buffer);
  for (let o = 0; o < outer; o++) {
    out.set(t.raw_data.subarray(o * from * inner, (o + 1) * from * inner), o * to * inner);
    if (filler) for (let k = from; k < to; k++) for (let j = 0; j < inner; j += 4) out.set(filler, (o * to + k) * inner + j);
  }
  t.raw_data = out;
  dims[axis] = to;
  t.dims = dims;
}

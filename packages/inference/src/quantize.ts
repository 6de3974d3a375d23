// Post-training int8 quantization of an ONNX model as exportOnnx writes it, in the QDQ form that ONNX Runtime
// turns into integer kernels (QLinearConv, QGemm; VNNI on CPUs that have it):
//
// - weights of Conv (and, when asked, plain Gemm) become int8 initializers, symmetric, one scale per output
//   channel, read through DequantizeLinear(axis); biases become int32 at scale input scale x weight scale;
// - every activation those nodes read, and each one's own output after its Relu/Clip, goes through a
//   QuantizeLinear -> DequantizeLinear pair (uint8, asymmetric) whose scale and zero point are calibrated on
//   sample inputs: the range seen (min-max) or the average over batches of a percentile of |values| (percentile).
//   ORT folds the Relu/Clip before a QuantizeLinear whose range lies inside it, so Conv -> Q is one integer kernel.
//
// Everything else (pooling, the head's probabilities, the out-of-distribution dot products) stays fp32, and so
// do, when asked (int8Stride), the convolutions on the large early feature maps: on fine-tuned MobileNets at 288
// px (bench/int8-gate.ts --model) the rounding of their many activations adds up layer after layer to flip
// 1-10% of predictions, while the layers after them quantize with the predictions unchanged.
//
// A quantized Conv reading the model's input gets 7-bit weights: ONNX Runtime's u8 x s8 kernels on x86 CPUs
// without VNNI add products pairwise in int16 (VPMADDUBSW), which saturates where both uint8 activations and
// int8 weights are near their ends; image pixels fill the whole uint8 range, and with 8-bit weights that first
// convolution alone took agreement with fp32 from 99% to 89%. 7 bits keep every pair inside int16.
import { AttributeType, decodeModel, encodeModel, intAttribute, TensorDataType, type OnnxModel, type OnnxNode, type OnnxTensor } from './onnx-proto';
import type { PixelTransform } from './image';
import { KEEP_AS_WRITTEN, loadOrt } from './session';

export type CalibrationMethod = 'minmax' | 'percentile';

export interface QuantizeOptions {
  /** How activation ranges are taken from the calibration batches (default 'minmax'). */
  method?: CalibrationMethod;
  /** For 'percentile': the share of |values| kept inside the range, in percent (default 99.99). */
  percentile?: number;
  /**
   * Bits of the weights' integer range (default 8; stored as int8 whatever it is). Fewer bits make a coarser
   * model; nothing but tests should need that.
   */
  weightBits?: number;
  /** Quantize plain Gemm nodes too (default false: the head is a sliver of the work and carries the probabilities). */
  gemm?: boolean;
  /**
   * Also quantize the outputs of quantized nodes that no quantized node reads (the last convolution's, before the
   * head's pooling), so that they run as integer kernels too (default true: a frozen base's extraction and a served
   * classifier both do). false leaves such a node in float on its int8 weights (on MobileNet v1 at 288 px the
   * slowest convolution of the model then, 0.59 of int8's 3.3 ms an image), and the features the head reads are not
   * rounded to 8 bits.
   */
  quantizeOutputs?: boolean;
  /**
   * Shift each quantized node's bias so that its outputs' mean per channel on the calibration samples (the first
   * 64) is fp32's (default true): rounding weights moves those means, and the shifts add up layer after layer.
   */
  biasCorrection?: boolean;
  /** Names of Conv/Gemm nodes left in fp32. */
  fp32Nodes?: readonly string[];
  /**
   * Quantize only the nodes whose output is at least this many times narrower than the model's input (default 1:
   * all); those on larger feature maps stay fp32. Widths are followed through Conv, pooling and layout nodes.
   */
  int8Stride?: number;
  /**
   * The model's input is 8-bit pixels normalised by this transform (normalizeInto: (pixel - sub) * mul): the input's
   * quantization then steps by `mul` from a pixel value, so that each of the 256 pixel values is a level of its own
   * (see pixelGrid), where the calibrated range would put them half a step off the levels (MobileNet's [-1, 1] has
   * 255 steps between its ends, and half the pixel values would round to a neighbour's level). Used where `mul` is one
   * value and `sub` one value for all channels (Keras's 'tf' and 'unit' modes); other transforms keep the calibrated
   * range.
   */
  inputPixels?: PixelTransform;
  /** ORT intra-op threads for calibration (default 1). */
  threads?: number;
  /**
   * What an earlier quantizeOnnx of the same fp32 model (same calibration batches and method) measured: its ranges
   * are used instead of calibrating again, where they cover every activation this plan quantizes (a larger
   * int8Stride quantizes a subset). The calibration batches are then not read; the model is the same bytes.
   */
  calibrated?: Calibrated;
}

/** Activation ranges measured on calibration batches, and the batches kept for bias correction. */
export interface Calibrated {
  readonly method: CalibrationMethod;
  readonly percentile: number;
  readonly ranges: ReadonlyMap<string, Range>;
  readonly samples: number;
  readonly kept: readonly CalibrationBatch[];
}

export interface QuantizeReport {
  method: CalibrationMethod;
  percentile: number | null;
  weightBits: number;
  /** Calibration samples seen. */
  samples: number;
  /** Nodes whose weights are int8. */
  nodes: number;
  /** Conv/Gemm nodes left in fp32 because their output is wider than the model's input / int8Stride. */
  fp32Leading: number;
  /** Activations given a QuantizeLinear/DequantizeLinear pair. */
  activations: number;
  biasCorrection: boolean;
  /** Whether the input was quantized on its pixel grid (QuantizeOptions inputPixels). */
  pixelGrid: boolean;
}

/** Calibration input: batches of the model's input, samples one after the other. */
export interface CalibrationBatch {
  input: Float32Array;
  batch: number;
}

const QUANT_OPS = new Set(['Conv', 'Gemm']);
const ACTIVATIONS = new Set(['Relu', 'Clip']);
const DT = TensorDataType;
const SAMPLE_PER_TENSOR = 16_384;
/** Weight bits of a quantized node reading the model's input (see the top of this file). */
const INPUT_WEIGHT_BITS = 7;
/** Nodes through which the width of a feature map is followed (besides Conv and pooling). */
const SAME_WIDTH = new Set(['Relu', 'Clip', 'BatchNormalization', 'Add', 'Mul', 'Sub', 'Div', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'LeakyRelu', 'Identity', 'Pad']);
const POOLS = new Set(['MaxPool', 'AveragePool']);

/** The fp32 model quantized to int8 (QDQ), calibrated on `calibration`. */
export async function quantizeOnnx(
  fp32: Uint8Array,
  calibration: Iterable<CalibrationBatch> | AsyncIterable<CalibrationBatch>,
  opts: QuantizeOptions = {},
): Promise<{ model: Uint8Array; report: QuantizeReport; calibrated: Calibrated }> {
  const method = opts.method ?? 'minmax';
  const percentile = opts.percentile ?? 99.99;
  const weightBits = opts.weightBits ?? 8;
  if (method !== 'minmax' && method !== 'percentile') throw new RangeError(`calibration method must be minmax or percentile, got ${method}`);
  if (!(percentile > 50 && percentile <= 100)) throw new RangeError(`percentile must be in (50, 100], got ${percentile}`);
  if (!Number.isInteger(weightBits) || weightBits < 2 || weightBits > 8) throw new RangeError(`weightBits must be an integer from 2 to 8, got ${weightBits}`);
  const int8Stride = opts.int8Stride ?? 1;
  if (!(int8Stride >= 1)) throw new RangeError(`int8Stride must be at least 1, got ${int8Stride}`);
  const model = decodeModel(fp32);
  const wide = wideNodes(model, int8Stride);
  const plan = planQuantization(model, opts.gemm ?? false, opts.quantizeOutputs ?? true, new Set([...(opts.fp32Nodes ?? []), ...wide]));
  if (plan.nodes.length === 0) throw new Error('the model has no Conv or Gemm with constant weights to quantize');
  const threads = opts.threads ?? 1;
  const earlier = opts.calibrated;
  const reusable = earlier && earlier.method === method && earlier.percentile === percentile && plan.activations.every((a) => earlier.ranges.has(a));
  const calibrated: Calibrated = reusable ? earlier : { method, percentile, ...(await calibrate(model, plan.activations, calibration, method, percentile, threads)) };
  const { ranges, samples, kept } = calibrated;
  const grid = opts.inputPixels && plan.input ? pixelGrid(opts.inputPixels) : null;
  const shiftedBiases = rewrite(model, plan, ranges, weightBits, grid);
  if (opts.biasCorrection ?? true) await correctBiases(decodeModel(fp32), model, plan, kept, threads, shiftedBiases);
  const report: QuantizeReport = {
    method,
    percentile: method === 'percentile' ? percentile : null,
    weightBits,
    samples,
    nodes: plan.nodes.length,
    fp32Leading: wide.length,
    activations: plan.activations.length,
    biasCorrection: opts.biasCorrection ?? true,
    pixelGrid: grid !== null,
  };
  model.metadata_props.push({ key: 'graft.quantization', value: JSON.stringify(report) });
  return { model: encodeModel(model), report, calibrated };
}

interface Plan {
  /** Conv/Gemm nodes whose weights become int8, with the axis of their output channels in the weight, and whether they read the model's input. */
  nodes: { node: OnnxNode; axis: number; readsInput: boolean }[];
  /** Activation tensors that get a Q/DQ pair. */
  activations: string[];
  /**
   * Which of them is the model's input (or only a reordering of it), where one is and only quantized nodes with
   * biases read it (what pixelGrid's shift needs).
   */
  input: string | null;
}

function planQuantization(model: OnnxModel, gemm: boolean, quantizeOutputs: boolean, fp32Nodes: ReadonlySet<string>): Plan {
  const g = model.graph;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const readers = new Map<string, OnnxNode[]>();
  for (const n of g.node) for (const i of n.input) if (i) readers.set(i, [...(readers.get(i) ?? []), n]);
  const nodes: Plan['nodes'] = [];
  const activations = new Set<string>();
  // The model's input, and what only reorders it (exportOnnx's NHWC -> NCHW Transpose).
  const modelInputs = new Set(g.input.map((i) => i.name));
  for (const n of g.node) if (n.op_type === 'Transpose' && modelInputs.has(n.input[0]!)) modelInputs.add(n.output[0]!);
  for (const node of g.node) {
    if (!QUANT_OPS.has(node.op_type) || fp32Nodes.has(node.name)) continue;
    const [x, w, b] = node.input;
    const weight = inits.get(w!);
    if (!weight || weight.data_type !== DT.FLOAT || inits.has(x!) || (readers.get(w!)?.length ?? 0) !== 1) continue;
    if (b && (!inits.has(b) || (readers.get(b)?.length ?? 0) !== 1)) continue;
    let axis = 0;
    if (node.op_type === 'Gemm') {
      if (!gemm || !plainGemm(node) || weight.dims.length !== 2) continue;
      axis = 1;
    }
    nodes.push({ node, axis, readsInput: modelInputs.has(x!) });
    activations.add(x!);
    if (!quantizeOutputs) continue;
    // The node's output after its activation function: a QuantizeLinear right there makes node + Q one kernel.
    let out = node.output[0]!;
    const next = readers.get(out);
    if (next?.length === 1 && ACTIVATIONS.has(next[0]!.op_type)) out = next[0]!.output[0]!;
    activations.add(out);
  }
  const input = [...activations].find((a) => modelInputs.has(a));
  const biasedReaders = input !== undefined && (readers.get(input) ?? []).every((r) => nodes.some((n) => n.node === r && r.input[2]));
  return { nodes, activations: [...activations], input: biasedReaders ? input : null };
}

/**
 * Conv/Gemm nodes, in graph order, whose output is wider than the model's input / `stride`: spatial widths are
 * followed from the input through Transpose, Conv, pooling and element-wise nodes (Pad counted as keeping it).
 */
function wideNodes(model: OnnxModel, stride: number): string[] {
  const g = model.graph;
  if (stride <= 1) return [];
  const shapes = new Map<string, number[]>();
  for (const i of g.input) shapes.set(i.name, i.type.tensor_type.shape.dim.map((d) => Number(d.dim_value ?? 0)));
  const layout = model.metadata_props.find((p) => p.key === 'graft.layout')?.value ?? 'NCHW';
  const inputWidth = (s: number[]) => (layout === 'NHWC' ? s[2] : s[3]) ?? 0;
  const width = inputWidth(shapes.get(g.input[0]!.name) ?? []);
  const attr = (n: OnnxNode, name: string) => n.attribute.find((a) => a.name === name)?.ints?.map(Number);
  const wide: string[] = [];
  for (const n of g.node) {
    const s = shapes.get(n.input[0]!);
    if (!s) continue;
    let out: number[] | undefined;
    if (n.op_type === 'Transpose') out = (attr(n, 'perm') ?? s.map((_, i) => s.length - 1 - i)).map((p) => s[p]!);
    else if (SAME_WIDTH.has(n.op_type)) out = s;
    else if (n.op_type === 'Conv' || POOLS.has(n.op_type)) {
      const k = attr(n, 'kernel_shape')?.[1] ?? s[3]!;
      const [st, dil, pads] = [attr(n, 'strides')?.[1] ?? 1, attr(n, 'dilations')?.[1] ?? 1, attr(n, 'pads') ?? [0, 0, 0, 0]];
      const w = Math.floor((s[3]! + pads[1]! + pads[3]! - dil * (k - 1) - 1) / st) + 1;
      out = [s[0]!, s[1]!, s[2]!, w];
      if (n.op_type === 'Conv' && w * stride > width) wide.push(n.name);
    }
    if (out) shapes.set(n.output[0]!, out);
  }
  return wide;
}

function plainGemm(node: OnnxNode): boolean {
  return node.attribute.every((a) => (a.name === 'transA' || a.name === 'transB' ? !a.i : a.name !== 'alpha' && a.name !== 'beta'));
}

export interface Range {
  lo: number;
  hi: number;
}

/** Calibration samples kept for bias correction. */
const KEPT_SAMPLES = 64;

/**
 * What a probe gives of each tensor: its values ('values'), its minimum and maximum ('range'), or its sum over the
 * samples of the batch ('batchSum'). Reductions run inside the session, so only a few numbers per tensor (or one
 * sample's worth) come back to JavaScript.
 */
type ProbeReduction = 'values' | 'range' | 'batchSum';

/**
 * An ORT session of `model` that also outputs `tensors`, reduced as asked. No graph optimisation removes or fuses
 * away a node whose output the graph gives, and WeightBiasQuantization is off (KEEP_AS_WRITTEN). The session runs at
 * level 'all', whose layout and fusion passes run the model as a served model runs (ranges: the same as at 'basic', in
 * half the time: 0.46 s against about 0.9 for 32 images through MobileNet v1 0.75 below its top block at 288 px; a QDQ
 * model's convolutions run as integer kernels).
 */
async function probeSession(model: OnnxModel, tensors: string[], threads: number, reduction: ProbeReduction) {
  const ort = await loadOrt();
  const probe: OnnxModel = structuredClone(model);
  const inputName = probe.graph.input[0]!.name;
  const existing = new Set(probe.graph.output.map((o) => o.name));
  const outputs = new Map<string, string[]>();
  const output = (name: string) => probe.graph.output.push({ name, type: { tensor_type: { elem_type: DT.FLOAT } } } as never);
  const nonNegative = reduction === 'range' ? nonNegativeTensors(probe) : new Set<string>();
  if (reduction === 'batchSum') probe.graph.initializer.push(tensor('probe/batch_axis', [1], DT.INT64, BigInt64Array.of(0n)));
  for (const t of tensors) {
    if (reduction === 'values') {
      if (t !== inputName && !existing.has(t)) output(t);
      outputs.set(t, [t]);
      continue;
    }
    // A range's low end only matters below 0 (activationParams): a ReLU's output needs its maximum alone.
    const reduced =
      reduction === 'batchSum'
        ? [['ReduceSum', `${t}/probe_sum`]]
        : [...(nonNegative.has(t) ? [] : [['ReduceMin', `${t}/probe_min`]]), ['ReduceMax', `${t}/probe_max`]];
    for (const [op, out] of reduced) {
      const keepdims = { name: 'keepdims', type: AttributeType.INT, i: 0 };
      const input = op === 'ReduceSum' ? [t, 'probe/batch_axis'] : [t];
      probe.graph.node.push({ op_type: op!, name: out!, input, output: [out!], attribute: [keepdims] });
      output(out!);
    }
    outputs.set(t, reduced.map(([, out]) => out!));
  }
  const session = await ort.InferenceSession.create(encodeModel(probe), { intraOpNumThreads: threads, graphOptimizationLevel: 'all', executionProviders: ['cpu'], extra: KEEP_AS_WRITTEN });
  const inputShape = probe.graph.input[0]!.type.tensor_type.shape.dim.slice(1).map((d) => Number(d.dim_value));
  const wanted = [...new Set([...outputs.values()].flat())].filter((t) => t !== inputName);
  return {
    /**
     * The tensors' values (reduced as asked) for one batch, with their dimensions; a non-negative tensor's range is
     * [0, its maximum].
     */
    async run({ input, batch }: CalibrationBatch, use: (name: string, values: Float32Array, dims: readonly number[]) => void): Promise<void> {
      const results = await session.run({ [inputName]: new ort.Tensor('float32', input, [batch, ...inputShape]) }, wanted);
      const valueOf = (name: string) => (name === inputName ? input : (results[name]!.data as Float32Array));
      const dimsOf = (name: string) => (name === inputName ? [batch, ...inputShape] : results[name]!.dims);
      for (const [t, outs] of outputs) {
        if (reduction !== 'range') use(t, valueOf(outs[0]!), dimsOf(outs[0]!));
        else use(t, Float32Array.from([...(nonNegative.has(t) ? [0] : []), ...outs.flatMap((o) => [...valueOf(o)])]), [outs.length]);
      }
      for (const r of Object.values(results)) r.dispose();
    },
    release: () => session.release(),
  };
}

/** Tensors that cannot be negative: the outputs of Relu, and of Clip with a constant lower bound of at least 0. */
function nonNegativeTensors(model: OnnxModel): Set<string> {
  const inits = new Map(model.graph.initializer.map((t) => [t.name, t]));
  const out = new Set<string>();
  for (const n of model.graph.node) {
    const lower = n.op_type === 'Clip' && n.input[1] ? inits.get(n.input[1]) : undefined;
    const bound = lower?.data_type === DT.FLOAT ? floatsOf(lower) : null;
    if (n.op_type === 'Relu' || (bound?.length === 1 && bound[0]! >= 0)) out.add(n.output[0]!);
  }
  return out;
}

/** Runs the fp32 model with every planned activation as an extra output, and takes each one's range. */
async function calibrate(
  model: OnnxModel,
  tensors: string[],
  batches: Iterable<CalibrationBatch> | AsyncIterable<CalibrationBatch>,
  method: CalibrationMethod,
  percentile: number,
  threads: number,
): Promise<{ ranges: Map<string, Range>; samples: number; kept: CalibrationBatch[] }> {
  const probe = await probeSession(model, tensors, threads, method === 'minmax' ? 'range' : 'values');
  const seen = new Map<string, { min: number; max: number; lowSum: number; highSum: number; batches: number }>();
  const kept: CalibrationBatch[] = [];
  let samples = 0;
  try {
    for await (const b of batches) {
      await probe.run(b, (name, values) => {
        const s = seen.get(name) ?? { min: Infinity, max: -Infinity, lowSum: 0, highSum: 0, batches: 0 };
        observe(s, values, method, percentile);
        seen.set(name, s);
      });
      if (samples < KEPT_SAMPLES) kept.push(b);
      samples += b.batch;
    }
  } finally {
    await probe.release();
  }
  if (samples === 0) throw new Error('no calibration samples');
  const ranges = new Map<string, Range>();
  for (const [name, s] of seen) {
    ranges.set(name, method === 'minmax' ? { lo: s.min, hi: s.max } : { lo: Math.max(s.min, s.lowSum / s.batches), hi: Math.min(s.max, s.highSum / s.batches) });
  }
  return { ranges, samples, kept };
}

/** Each tensor summed over every sample of `batches`, with the number of samples. */
async function batchSums(model: OnnxModel, tensors: string[], batches: readonly CalibrationBatch[], threads: number) {
  const probe = await probeSession(model, tensors, threads, 'batchSum');
  const sums = new Map<string, { sum: Float64Array; dims: readonly number[] }>();
  let samples = 0;
  try {
    for (const b of batches) {
      await probe.run(b, (name, values, dims) => {
        const s = sums.get(name) ?? { sum: new Float64Array(values.length), dims };
        for (let i = 0; i < values.length; i++) s.sum[i]! += values[i]!;
        sums.set(name, s);
      });
      samples += b.batch;
    }
  } finally {
    await probe.release();
  }
  return { sums, samples };
}

/**
 * Moves each quantized node's int32 bias by the mean shift per output channel that its rounded weights cause. The
 * node is linear in its weights, so that shift is their rounding error (dequantized minus float) applied to the mean
 * of its input: one run of the int8 model on `batches` gives each quantized node's input channel means (meanShift).
 * The int32 bias becomes round((float bias - shift) / bias scale); a node reading a shifted input (pixelGrid) starts
 * from its float bias as `shifted` gives it.
 */
async function correctBiases(
  fp32: OnnxModel,
  int8: OnnxModel,
  plan: Plan,
  batches: readonly CalibrationBatch[],
  threads: number,
  shifted: ReadonlyMap<string, Float32Array>,
): Promise<void> {
  const originals = new Map(fp32.graph.initializer.map((t) => [t.name, t]));
  const inits = new Map(int8.graph.initializer.map((t) => [t.name, t]));
  const biased = plan.nodes.filter(({ node }) => node.input[2]);
  const { sums, samples } = await batchSums(int8, [...new Set(biased.map(({ node }) => node.input[0]!))], batches, threads);
  for (const { node, axis } of biased) {
    const [weight, bias] = [undequantized(node.input[1]!), originalBias(node)];
    const float = originals.get(weight)!;
    const delta = floatsOf(float);
    const q = new Int8Array(inits.get(`${weight}/int8`)!.raw_data.slice().buffer);
    const wScale = floatsOf(inits.get(`${weight}/w_scale`)!);
    const inner = float.dims.slice(axis + 1).reduce((p, d) => p * Number(d), 1);
    for (let i = 0; i < delta.length; i++) delta[i] = q[i]! * wScale[Math.floor(i / inner) % wScale.length]! - delta[i]!;
    const { sum, dims } = sums.get(node.input[0]!)!;
    const shift = meanShift(node, delta, float.dims.map(Number), channelMeans(sum, Number(dims[0]), samples));
    const b = shifted.get(bias) ?? floatsOf(originals.get(bias)!);
    const bScale = floatsOf(inits.get(`${bias}/b_scale`)!);
    const bq = Int32Array.from(b, (v, c) => clampInt32(Math.round((v - shift[c]!) / bScale[c]!)));
    inits.get(`${bias}/int32`)!.raw_data = new Uint8Array(bq.buffer);
  }
}

/** Per channel (the first axis of a sample), the mean of a tensor whose `samples` samples sum to `sum`. */
function channelMeans(sum: Float64Array, channels: number, samples: number): Float64Array {
  const inner = sum.length / channels;
  const means = new Float64Array(channels);
  for (let i = 0; i < sum.length; i++) means[Math.floor(i / inner)]! += sum[i]!;
  for (let c = 0; c < channels; c++) means[c]! /= samples * inner;
  return means;
}

/**
 * Per output channel, the mean output that weights `delta` give on an input with channel means `mean`: a plain Gemm's
 * (K x N) or a Conv's (OIHW, grouped as the node says), whose window is taken to read each input channel's mean at
 * every tap, as it does away from the borders (the padding there reads zeros: on MobileNet v1 0.25 at 224 px, means
 * taken per tap left its channel means 0.034 output steps from fp32's on average, against 0.038 this way).
 */
function meanShift(node: OnnxNode, delta: Float32Array, [rows, columns]: number[], mean: Float64Array): Float64Array {
  if (node.op_type === 'Gemm') {
    const shift = new Float64Array(columns!);
    for (let k = 0; k < rows!; k++) for (let o = 0; o < columns!; o++) shift[o]! += delta[k * columns! + o]! * mean[k]!;
    return shift;
  }
  const [outputs, groupInputs] = [rows!, columns!];
  const window = delta.length / outputs;
  const taps = window / groupInputs;
  const perGroup = outputs / intAttribute(node, 'group', 1);
  const shift = new Float64Array(outputs);
  for (let o = 0; o < outputs; o++) {
    const first = Math.floor(o / perGroup) * groupInputs;
    for (let i = 0; i < window; i++) shift[o]! += delta[o * window + i]! * mean[first + Math.floor(i / taps)]!;
  }
  return shift;
}

/** The name of a quantized node's weight before quantization. */
function undequantized(dequantized: string): string {
  return dequantized.replace(/\/dequantized$/, '');
}

/** The name of a quantized node's bias before quantization. */
function originalBias(node: OnnxNode): string {
  return undequantized(node.input[2]!);
}

const clampInt32 = (v: number) => Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, v));

function observe(
  s: { min: number; max: number; lowSum: number; highSum: number; batches: number },
  values: Float32Array,
  method: CalibrationMethod,
  percentile: number,
): void {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  s.min = Math.min(s.min, min);
  s.max = Math.max(s.max, max);
  if (method !== 'percentile') return;
  // A strided sample of the batch's values; its percentiles are averaged over the batches.
  const step = Math.max(1, Math.floor(values.length / SAMPLE_PER_TENSOR));
  const sample = new Float32Array(Math.ceil(values.length / step));
  for (let i = 0, j = 0; i < values.length; i += step, j++) sample[j] = values[i]!;
  sample.sort();
  const at = (p: number) => sample[Math.min(sample.length - 1, Math.max(0, Math.round((p / 100) * (sample.length - 1))))]!;
  s.lowSum += Math.min(at(100 - percentile), 0);
  s.highSum += Math.max(at(percentile), 0);
  s.batches++;
}

/** uint8 scale and zero point covering [lo, hi] and 0. */
function activationParams({ lo, hi }: Range): { scale: number; zero: number } {
  const rmin = Math.min(lo, 0);
  const rmax = Math.max(hi, 0);
  const scale = rmax > rmin ? (rmax - rmin) / 255 : 1;
  const zero = Math.min(255, Math.max(0, Math.round(-rmin / scale)));
  return { scale, zero };
}

function floatsOf(t: OnnxTensor): Float32Array {
  const raw = t.raw_data;
  const copy = new Uint8Array(raw.byteLength);
  copy.set(raw);
  return new Float32Array(copy.buffer);
}

function tensor(name: string, dims: number[], dataType: number, data: ArrayBufferView): OnnxTensor {
  return { name, dims, data_type: dataType, raw_data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/**
 * The quantization of an input of 8-bit pixels normalised by `t` that gives every pixel value a level of its own:
 * the scale is the step between pixel values, the zero point the integer part of `sub`, and `shift` (what is left of
 * `sub`, in input units) is added before rounding, so that pixel v lands on level v exactly. Dequantized, the input
 * is then `shift` above the normalised pixel, which the biases of the nodes reading it take back (where a
 * convolution pads the image, its border reads zeros that stand for `shift` below: half a pixel step for 'tf').
 * Null where the channels differ in `mul` or `sub`.
 */
export function pixelGrid(t: PixelTransform): { scale: number; zero: number; shift: number } | null {
  const [mul, sub] = [t.mul[0], t.sub[0]];
  if (!t.mul.every((m) => m === mul) || !t.sub.every((v) => v === sub) || !(mul > 0)) return null;
  const zero = Math.floor(sub);
  if (zero < 0 || zero > 255) return null;
  return { scale: mul, zero, shift: (sub - zero) * mul };
}

type PixelGrid = NonNullable<ReturnType<typeof pixelGrid>>;

/**
 * Rewrites the model in QDQ form. Returns the float biases of the nodes that read a shifted input (pixelGrid), with
 * the shift taken back, by the original bias's name.
 */
function rewrite(model: OnnxModel, plan: Plan, ranges: ReadonlyMap<string, Range>, weightBits: number, grid: PixelGrid | null): Map<string, Float32Array> {
  const shiftedBiases = new Map<string, Float32Array>();
  const g = model.graph;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const added: OnnxNode[] = [];
  const scales = new Map<string, number>();
  // What a dequantized input is above the value it stands for (pixelGrid), by the DQ output's name.
  const shifts = new Map<string, number>();
  // Activations: x -> Q -> DQ, every reader of x then reads the DQ output.
  const renamed = new Map<string, string>();
  for (const name of plan.activations) {
    const range = ranges.get(name);
    if (!range) throw new Error(`no calibration range for ${name}`);
    const onGrid = grid && name === plan.input ? grid : null;
    const { scale, zero } = onGrid ?? activationParams(range);
    scales.set(name, scale);
    g.initializer.push(tensor(`${name}/q_scale`, [], DT.FLOAT, Float32Array.of(scale)));
    g.initializer.push(tensor(`${name}/q_zero`, [], DT.UINT8, Uint8Array.of(zero)));
    const q = `${name}/quantized`;
    const dq = `${name}/dequantized`;
    let quantizing = name;
    if (onGrid?.shift) {
      quantizing = `${name}/on_grid`;
      g.initializer.push(tensor(`${name}/grid_shift`, [], DT.FLOAT, Float32Array.of(onGrid.shift)));
      added.push({ op_type: 'Add', name: `${name}/GridShift`, input: [name, `${name}/grid_shift`], output: [quantizing], attribute: [] });
      shifts.set(dq, onGrid.shift);
    }
    added.push({ op_type: 'QuantizeLinear', name: `${name}/QuantizeLinear`, input: [quantizing, `${name}/q_scale`, `${name}/q_zero`], output: [q], attribute: [] });
    added.push({ op_type: 'DequantizeLinear', name: `${name}/DequantizeLinear`, input: [q, `${name}/q_scale`, `${name}/q_zero`], output: [dq], attribute: [] });
    renamed.set(name, dq);
  }
  for (const n of g.node) n.input = n.input.map((i) => renamed.get(i) ?? i);
  // Weights (per output channel, symmetric) and biases (int32 at input scale x weight scale).
  for (const { node, axis, readsInput } of plan.nodes) {
    const qmax = 2 ** (Math.min(weightBits, readsInput ? INPUT_WEIGHT_BITS : 8) - 1) - 1;
    const [x, w, b] = node.input;
    const weight = inits.get(w!)!;
    const values = floatsOf(weight);
    const channels = weight.dims[axis]!;
    const inner = weight.dims.slice(axis + 1).reduce((p, d) => p * d, 1);
    const wScale = new Float32Array(channels);
    for (let i = 0; i < values.length; i++) {
      const c = Math.floor(i / inner) % channels;
      wScale[c] = Math.max(wScale[c]!, Math.abs(values[i]!));
    }
    for (let c = 0; c < channels; c++) wScale[c] = wScale[c]! > 0 ? wScale[c]! / qmax : 1;
    const q = new Int8Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const c = Math.floor(i / inner) % channels;
      q[i] = Math.max(-qmax, Math.min(qmax, Math.round(values[i]! / wScale[c]!)));
    }
    const wName = weight.name;
    const idx = g.initializer.indexOf(weight);
    g.initializer[idx] = tensor(`${wName}/int8`, weight.dims, DT.INT8, q);
    g.initializer.push(tensor(`${wName}/w_scale`, [channels], DT.FLOAT, wScale));
    g.initializer.push(tensor(`${wName}/w_zero`, [channels], DT.INT8, new Int8Array(channels)));
    node.input[1] = dequantizeAlong(added, wName, [`${wName}/int8`, `${wName}/w_scale`, `${wName}/w_zero`], axis);
    if (b) {
      const bias = inits.get(b)!;
      const bv = floatsOf(bias);
      // A shifted input: each output channel's bias takes back its weights' sum times the shift.
      const shift = shifts.get(x!) ?? 0;
      if (shift) {
        for (let i = 0; i < values.length; i++) bv[Math.floor(i / inner) % channels] -= values[i]! * shift;
        shiftedBiases.set(b, bv);
      }
      const xScale = scales.get(originalOf(x!, renamed))!;
      const bScale = Float32Array.from(wScale, (s) => s * xScale);
      const bq = Int32Array.from(bv, (v, c) => clampInt32(Math.round(v / bScale[c]!)));
      g.initializer[g.initializer.indexOf(bias)] = tensor(`${b}/int32`, bias.dims, DT.INT32, bq);
      g.initializer.push(tensor(`${b}/b_scale`, [channels], DT.FLOAT, bScale));
      g.initializer.push(tensor(`${b}/b_zero`, [channels], DT.INT32, new Int32Array(channels)));
      node.input[2] = dequantizeAlong(added, b, [`${b}/int32`, `${b}/b_scale`, `${b}/b_zero`], 0);
    }
  }
  // Nodes in an order where each reads only what is computed before it: the new ones go right after their input.
  g.node = topologicalOrder([...g.node, ...added], new Set([...g.initializer.map((t) => t.name), ...g.input.map((i) => i.name)]));
  return shiftedBiases;
}

/** Adds a DequantizeLinear with one scale per slice along `axis`; returns its output's name. */
function dequantizeAlong(nodes: OnnxNode[], base: string, inputs: string[], axis: number): string {
  const output = `${base}/dequantized`;
  nodes.push({ op_type: 'DequantizeLinear', name: `${base}/DequantizeLinear`, input: inputs, output: [output], attribute: [{ name: 'axis', type: AttributeType.INT, i: axis }] });
  return output;
}

function originalOf(name: string, renamed: Map<string, string>): string {
  for (const [from, to] of renamed) if (to === name) return from;
  return name;
}

function topologicalOrder(nodes: OnnxNode[], available: Set<string>): OnnxNode[] {
  const ready = new Set(available);
  const out: OnnxNode[] = [];
  let pending = nodes;
  while (pending.length > 0) {
    const waiting: OnnxNode[] = [];
    for (const n of pending) {
      if (n.input.every((i) => !i || ready.has(i))) {
        out.push(n);
        for (const o of n.output) ready.add(o);
      } else waiting.push(n);
    }
    if (waiting.length === pending.length) throw new Error(`cannot order nodes: ${waiting.map((n) => n.name).join(', ')}`);
    pending = waiting;
  }
  return out;
}

// int8 export on a real network and real photos: MobileNet v1 0.25 with a cats-vs-dogs head (the sums of its
// ImageNet cat and dog classes), quantized with calibration on dogs-vs-cats training images and checked on its
// validation images; and the gate that keeps fp32 when int8 does not agree with it.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createSession,
  decodeImage,
  decodeModel,
  exportOnnx,
  normalizeInto,
  pixelTransform,
  quantizeClassifier,
  INT8_STRIDES,
  quantizeOnnx,
  pixelGrid,
  type ClassifierManifest,
} from '../src/index';
import { encodeModel } from '../src/onnx-proto';
import { KEEP_AS_WRITTEN, loadOrt } from '../src/session';
import { cosineSimilarity } from '../src/similarity';
import { loadModelDir, MODELS_DIR } from './helpers';

const DATA = join(MODELS_DIR, '../datasets/dogs-vs-cats');
const SIZE = 224;
const PREPROCESSING = { scale: 1 / 127.5, offset: -1 };
const MANIFEST: ClassifierManifest = { labels: ['cats', 'dogs'], inputSize: SIZE, preprocessing: PREPROCESSING, outputActivation: 'softmax' };

/** ImageNet classes 151-268 are dogs, 281-285 cats. */
async function petsClassifier(): Promise<Uint8Array> {
  const saved = await loadModelDir(join(MODELS_DIR, 'mobilenet_v1_0.25_224'));
  const topology = saved.modelJson.modelTopology as { model_config: { config: { layers: object[]; output_layers: unknown[] } } };
  const config = topology.model_config.config;
  config.layers.push({
    class_name: 'Dense',
    name: 'pets',
    config: { name: 'pets', units: 2, activation: 'linear', use_bias: false },
    inbound_nodes: [[['reshape_2', 0, 0, {}]]],
  });
  config.output_layers = [['pets', 0, 0]];
  const kernel = new Float32Array(1000 * 2);
  for (let c = 281; c <= 285; c++) kernel[c * 2] = 1;
  for (let c = 151; c <= 268; c++) kernel[c * 2 + 1] = 1;
  saved.modelJson.weightsManifest.at(-1)!.weights.push({ name: 'pets/kernel', shape: [1000, 2], dtype: 'float32' });
  const weights = new Uint8Array(saved.weights.byteLength + kernel.byteLength);
  weights.set(saved.weights);
  weights.set(new Uint8Array(kernel.buffer), saved.weights.byteLength);
  return exportOnnx(saved.modelJson, weights);
}

async function photos(split: string, label: string, n: number): Promise<Uint8Array[]> {
  const dir = join(DATA, split, label);
  const files = (await readdir(dir)).sort().slice(0, n);
  return Promise.all(files.map(async (f) => new Uint8Array(await readFile(join(dir, f)))));
}

async function batchOf(images: Uint8Array[]): Promise<{ input: Float32Array; batch: number }> {
  const t = pixelTransform(PREPROCESSING);
  const per = SIZE * SIZE * 3;
  const input = new Float32Array(images.length * per);
  const pixels = await Promise.all(images.map((b) => decodeImage(b, SIZE, 'lanczos3')));
  pixels.forEach((p, i) => normalizeInto(p, t, input, i * per));
  return { input, batch: images.length };
}

/**
 * For every quantized Conv of an int8 model (as quantizeOnnx writes it), how far the mean of each output channel on
 * `batch` lies from that of a twin with the fp32 weights and bias reading the same input, in quantization steps of the
 * node's output (the mean shift bias correction is there to take back). The QDQ graph runs in float at level 'basic'.
 */
async function meanErrors(int8: Uint8Array, batch: { input: Float32Array; batch: number }): Promise<{ nodes: number; max: number; mean: number }> {
  const ort = await loadOrt();
  const originals = new Map(decodeModel(fp32).graph.initializer.map((t) => [t.name, t]));
  const probe = decodeModel(int8);
  const inits = new Map(probe.graph.initializer.map((t) => [t.name, t]));
  const convs = probe.graph.node.filter((n) => n.op_type === 'Conv' && n.input[1]!.endsWith('/dequantized') && n.input[2]);
  const readers = (t: string) => probe.graph.node.filter((n) => n.input[0] === t);
  const pairs: { got: string; want: string; step: number; channels: number }[] = [];
  for (const conv of convs) {
    const [weight, bias] = [conv.input[1]!, conv.input[2]!].map((n) => n.replace(/\/dequantized$/, '')) as [string, string];
    probe.graph.initializer.push({ ...originals.get(weight)!, name: `${weight}/twin` }, { ...originals.get(bias)!, name: `${bias}/twin` });
    const twin = `${conv.output[0]}/twin`;
    probe.graph.node.push({ ...conv, name: `${conv.name}/twin`, input: [conv.input[0]!, `${weight}/twin`, `${bias}/twin`], output: [twin] });
    // Compared after the activation (what the next node reads): a channel whose bias does not fit int32 is dead either way.
    const clip = readers(conv.output[0]!).find((n) => n.op_type === 'Clip');
    const after = clip?.output[0] ?? conv.output[0]!;
    const twinAfter = clip ? `${after}/twin` : twin;
    if (clip) probe.graph.node.push({ ...clip, name: `${clip.name}/twin`, input: [twin, ...clip.input.slice(1)], output: [twinAfter] });
    for (const t of [after, twinAfter]) {
      probe.graph.node.push({ op_type: 'GlobalAveragePool', name: `${t}/mean`, input: [t], output: [`${t}/mean`], attribute: [] });
      probe.graph.output.push({ name: `${t}/mean`, type: { tensor_type: { elem_type: 1 } } } as never);
    }
    const q = readers(after).find((n) => n.op_type === 'QuantizeLinear')!;
    const step = new Float32Array(Uint8Array.from(inits.get(q.input[1]!)!.raw_data).buffer)[0]!;
    pairs.push({ got: `${after}/mean`, want: `${twinAfter}/mean`, step, channels: originals.get(bias)!.dims[0]! });
  }
  const session = await ort.InferenceSession.create(encodeModel(probe), { graphOptimizationLevel: 'basic', extra: KEEP_AS_WRITTEN });
  try {
    const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', batch.input, [batch.batch, SIZE, SIZE, 3]) });
    const steps = pairs.flatMap(({ got, want, step, channels }) => {
      const [g, w] = [out[got]!.data as Float32Array, out[want]!.data as Float32Array];
      return Array.from({ length: channels }, (_, c) => {
        let d = 0;
        for (let n = 0; n < batch.batch; n++) d += g[n * channels + c]! - w[n * channels + c]!;
        return Math.abs(d / batch.batch / step);
      });
    });
    return { nodes: pairs.length, max: Math.max(...steps), mean: steps.reduce((a, b) => a + b, 0) / steps.length };
  } finally {
    await session.release();
  }
}

let fp32: Uint8Array;
let calibration: Uint8Array[];
let validation: { images: Uint8Array[]; labels: number[] };

beforeAll(async () => {
  fp32 = await petsClassifier();
  calibration = [...(await photos('train', 'cats', 16)), ...(await photos('train', 'dogs', 16))];
  const [cats, dogs] = [await photos('validation', 'cats', 24), await photos('validation', 'dogs', 24)];
  validation = { images: [...cats, ...dogs], labels: [...cats.map(() => 0), ...dogs.map(() => 1)] };
}, 60_000);

describe('quantizeOnnx', () => {
  it('writes int8 per-channel weights and QDQ activations that ONNX Runtime runs, close to fp32 on real photos', async () => {
    const calib = [await batchOf(calibration.slice(0, 16)), await batchOf(calibration.slice(16))];
    const { model, report } = await quantizeOnnx(fp32, calib, { method: 'minmax' });
    expect(report).toMatchObject({ method: 'minmax', samples: 32, weightBits: 8 });
    const proto = decodeModel(model);
    const convs = proto.graph.node.filter((n) => n.op_type === 'Conv');
    expect(report.nodes).toBe(convs.length);
    const int8 = proto.graph.initializer.filter((t) => t.data_type === 3 && t.dims.length === 4);
    expect(int8.length).toBe(convs.length);
    // Every conv reads its weights through a per-output-channel DequantizeLinear.
    const producers = new Map(proto.graph.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
    for (const conv of convs) {
      const dq = producers.get(conv.input[1]!)!;
      expect(dq.op_type).toBe('DequantizeLinear');
      expect(producers.get(conv.input[0]!)?.op_type).toBe('DequantizeLinear');
      const scale = proto.graph.initializer.find((t) => t.name === dq.input[1])!;
      expect(scale.dims).toEqual([int8.find((t) => t.name === dq.input[0])!.dims[0]]);
    }
    expect(JSON.parse(proto.metadata_props.find((p) => p.key === 'graft.quantization')!.value)).toMatchObject({ method: 'minmax' });
    expect(model.byteLength).toBeLessThan(fp32.byteLength / 2.5);

    const [s32, s8] = [await createSession(fp32, { threads: 1 }), await createSession(model, { threads: 1 })];
    const x = await batchOf(validation.images);
    const [o32, o8] = [await s32.run(x.input, x.batch), await s8.run(x.input, x.batch)];
    expect(o32.every(Number.isFinite) && o8.every(Number.isFinite)).toBe(true);
    let agree = 0;
    for (let i = 0; i < x.batch; i++) agree += +(o32[2 * i]! > o32[2 * i + 1]! === o8[2 * i]! > o8[2 * i + 1]!);
    expect(agree / x.batch).toBeGreaterThanOrEqual(0.95);
    await Promise.all([s32.dispose(), s8.dispose()]);
  }, 120_000);

  it('quantizes plain Gemm weights too when asked, per output column', async () => {
    const { model, report } = await quantizeOnnx(fp32, [await batchOf(calibration.slice(0, 8))], { gemm: true });
    const proto = decodeModel(model);
    const gemm = proto.graph.node.find((n) => n.op_type === 'Gemm')!;
    const producers = new Map(proto.graph.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
    const dq = producers.get(gemm.input[1]!)!;
    expect(dq.op_type).toBe('DequantizeLinear');
    expect(dq.attribute).toContainEqual(expect.objectContaining({ name: 'axis', i: 1 }));
    expect(report.nodes).toBe(proto.graph.node.filter((n) => n.op_type === 'Conv').length + 1);
    const s8 = await createSession(model, { threads: 1 });
    const x = await batchOf(validation.images.slice(0, 4));
    expect((await s8.run(x.input, x.batch)).every(Number.isFinite)).toBe(true);
    await s8.dispose();
  }, 120_000);

  it("rounds the last convolution's output unless told not to, and leaves named nodes in fp32", async () => {
    const calib = [await batchOf(calibration.slice(0, 4))];
    const convs = decodeModel(fp32).graph.node.filter((n) => n.op_type === 'Conv');
    const plain = await quantizeOnnx(fp32, calib, { quantizeOutputs: false });
    const outputs = await quantizeOnnx(fp32, calib);
    // Two Convs feed no quantized node: the last feature map's (pooled next) and the ImageNet predictions'. Only
    // `quantizeOutputs` (the default) rounds their outputs.
    expect(outputs.report.activations).toBe(plain.report.activations + 2);
    const quantized = (m: Uint8Array) => new Set(decodeModel(m).graph.node.filter((n) => n.op_type === 'QuantizeLinear').map((n) => n.input[0]));
    expect([...quantized(outputs.model)].filter((t) => !quantized(plain.model).has(t)).sort()).toEqual(['conv_preds', 'conv_pw_13_relu/relu6']);
    const first = convs[0]!.name;
    const mixed = await quantizeOnnx(fp32, calib, { fp32Nodes: [first] });
    expect(mixed.report.nodes).toBe(convs.length - 1);
    const firstNode = decodeModel(mixed.model).graph.node.find((n) => n.name === first)!;
    const weight = decodeModel(mixed.model).graph.initializer.find((t) => t.name === firstNode.input[1]);
    expect(weight?.data_type).toBe(1);
  }, 120_000);

  it('keeps a node left in fp32 between int8 ones in fp32 where ONNX Runtime runs the model', async () => {
    // A depthwise convolution between two int8 ones: its input is dequantized and its output quantized, the pattern
    // ONNX Runtime's WeightBiasQuantization rewrites by rounding the float weights per tensor (a depthwise filter's
    // channels differ by orders of magnitude, so that loses whole channels).
    const calib = [await batchOf(calibration.slice(0, 8))];
    const between = decodeModel(fp32).graph.node.find((n) => n.name === 'conv_dw_1/Conv')!.name;
    const [full, mixed] = [await quantizeOnnx(fp32, calib), await quantizeOnnx(fp32, calib, { fp32Nodes: [between] })];
    expect(mixed.report.nodes).toBe(full.report.nodes - 1);
    const x = await batchOf(validation.images);
    const outputs = await Promise.all(
      [fp32, full.model, mixed.model].map(async (m) => {
        const s = await createSession(m, { threads: 1 });
        try {
          return await s.run(x.input, x.batch);
        } finally {
          await s.dispose();
        }
      }),
    );
    const [o32, o8, oMixed] = outputs as [Float32Array, Float32Array, Float32Array];
    // One convolution fewer in int8 is no further from fp32 than all of them (within rounding's luck).
    expect(cosineSimilarity(o32, oMixed)).toBeGreaterThan(cosineSimilarity(o32, o8) - 0.002);
    expect(cosineSimilarity(o32, oMixed)).toBeGreaterThan(0.97);
  }, 120_000);

  it("corrects each quantized bias so that its convolution's channel means on the calibration images are fp32's, unless told not to", async () => {
    const calib = [await batchOf(calibration.slice(0, 8))];
    const [corrected, plain] = [await quantizeOnnx(fp32, calib), await quantizeOnnx(fp32, calib, { biasCorrection: false })];
    expect([corrected.report.biasCorrection, plain.report.biasCorrection]).toEqual([true, false]);
    const [good, raw] = [await meanErrors(corrected.model, calib[0]!), await meanErrors(plain.model, calib[0]!)];
    expect(good.nodes).toBe(corrected.report.nodes);
    // Rounded weights move channel means by up to 19 output steps here (0.43 on average); corrected, what is left is the
    // rounding of the biases and of the activations the correction's run computes in integers (1.4 at most, 0.04).
    expect(raw.max).toBeGreaterThan(8);
    expect(good.max).toBeLessThan(3);
    expect(good.mean).toBeLessThan(raw.mean / 5);
  }, 120_000);

  it("corrects a plain Gemm's int32 bias for the mean its rounded weights move, from the input as int8 reads it", async () => {
    // y = x W + b, 4 inputs and 3 outputs, weights that 7 bits (it reads the model's input) round coarsely.
    const [inputs, outputs, rows] = [4, 3, 8];
    const w = Float32Array.from({ length: inputs * outputs }, (_, i) => Math.sin(i * 1.7 + 0.3) * 0.37);
    const b = Float32Array.of(0.25, -0.5, 0.125);
    const f = (name: string, dims: number[], data: Float32Array) => ({ name, dims, data_type: 1, raw_data: new Uint8Array(data.buffer) });
    const io = (name: string, dims: number[]) => ({ name, type: { tensor_type: { elem_type: 1, shape: { dim: dims.map((d) => ({ dim_value: d })) } } } });
    const model = encodeModel({
      ir_version: 7,
      opset_import: [{ domain: '', version: 13 }],
      producer_name: 'test',
      producer_version: '1',
      graph: {
        name: 'gemm',
        node: [{ op_type: 'Gemm', name: 'dense', input: ['x', 'w', 'b'], output: ['y'], attribute: [] }],
        initializer: [f('w', [inputs, outputs], w), f('b', [outputs], b)],
        input: [io('x', [rows, inputs])],
        output: [io('y', [rows, outputs])],
      },
      metadata_props: [],
    });
    // Inputs far from 0 on average, so that the weights' rounding moves the outputs' means by many bias steps.
    const x = Float32Array.from({ length: rows * inputs }, (_, i) => 2 + Math.cos(i * 0.9) * 1.5);
    const quantize = (biasCorrection: boolean) => quantizeOnnx(model, [{ input: x, batch: rows }], { gemm: true, quantizeOutputs: false, biasCorrection });
    const [corrected, plain] = [await quantize(true), await quantize(false)];
    const inits = (m: Uint8Array) => new Map(decodeModel(m).graph.initializer.map((t) => [t.name, Uint8Array.from(t.raw_data).buffer]));
    const got = inits(corrected.model);
    const [xScale, xZero] = [new Float32Array(got.get('x/q_scale')!)[0]!, new Uint8Array(got.get('x/q_zero')!)[0]!];
    const [q, wScale, bScale] = [new Int8Array(got.get('w/int8')!), new Float32Array(got.get('w/w_scale')!), new Float32Array(got.get('b/b_scale')!)];
    // The mean of each input as the int8 model reads it (quantized, then dequantized), and the bias that takes back
    // what the rounded weights add to each output's mean.
    const mean = Array.from({ length: inputs }, (_, k) => {
      let sum = 0;
      for (let r = 0; r < rows; r++) sum += (Math.min(255, Math.max(0, Math.round(x[r * inputs + k]! / xScale) + xZero)) - xZero) * xScale;
      return sum / rows;
    });
    const expected = Array.from(b, (bias, o) => {
      let shift = 0;
      for (let k = 0; k < inputs; k++) shift += (q[k * outputs + o]! * wScale[o]! - w[k * outputs + o]!) * mean[k]!;
      return Math.round((bias - shift) / bScale[o]!);
    });
    expect([...new Int32Array(got.get('b/int32')!)]).toEqual(expected);
    const uncorrected = [...new Int32Array(inits(plain.model).get('b/int32')!)];
    expect(uncorrected).toEqual(Array.from(b, (bias, o) => Math.round(bias / bScale[o]!)));
    expect(uncorrected.some((v, o) => Math.abs(v - expected[o]!) > 2)).toBe(true);
  }, 60_000);

  it('leaves the convolutions on feature maps wider than input / int8Stride in fp32, and gives the one reading the image 7-bit weights', async () => {
    const calib = [await batchOf(calibration.slice(0, 4))];
    const convs = decodeModel(fp32).graph.node.filter((n) => n.op_type === 'Conv').map((n) => n.name);
    const intWeights = (m: Uint8Array) => {
      const proto = decodeModel(m);
      const inits = new Map(proto.graph.initializer.map((t) => [t.name, t]));
      const producers = new Map(proto.graph.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
      // Per Conv, the largest |int8 weight| (null: its weights are float).
      return convs.map((name) => {
        const conv = proto.graph.node.find((n) => n.name === name)!;
        const dq = producers.get(conv.input[1]!);
        if (dq?.op_type !== 'DequantizeLinear') return null;
        return new Int8Array(Buffer.from(inits.get(dq.input[0]!)!.raw_data)).reduce((m, q) => Math.max(m, Math.abs(q)), 0);
      });
    };
    // At 224 px, MobileNet's first five blocks run on maps of 112, 56 and 28 px: wider than 224 / 16.
    const strided = await quantizeOnnx(fp32, calib, { int8Stride: 16 });
    expect(strided.report).toMatchObject({ fp32Leading: 11, nodes: convs.length - 11 });
    const bits16 = intWeights(strided.model);
    expect(bits16.slice(0, 11)).toEqual(Array(11).fill(null));
    expect(bits16.slice(11).every((q) => q === 127)).toBe(true);
    const all = intWeights((await quantizeOnnx(fp32, calib, { int8Stride: 1 })).model);
    expect(all[0]).toBe(63);
    expect(all.slice(1).every((q) => q === 127)).toBe(true);
    await expect(quantizeOnnx(fp32, calib, { int8Stride: 0 })).rejects.toThrow(/int8Stride/);
  }, 120_000);

  it('reuses the ranges an earlier quantization measured where they cover the plan: same bytes, batches not read', async () => {
    const calib = [await batchOf(calibration.slice(0, 4))];
    const unread = {
      [Symbol.iterator]: (): Iterator<never> => {
        throw new Error('the calibration batches were read');
      },
    };
    const all = await quantizeOnnx(fp32, calib, { int8Stride: 1 });
    const fresh = await quantizeOnnx(fp32, calib, { int8Stride: 16 });
    const reused = await quantizeOnnx(fp32, unread, { int8Stride: 16, calibrated: all.calibrated });
    expect(Buffer.compare(Buffer.from(reused.model), Buffer.from(fresh.model))).toBe(0);
    expect(reused.report).toEqual(fresh.report);
    expect(reused.calibrated).toBe(all.calibrated);
    // Ranges that do not cover the plan (stride 16's, for every convolution), or of another method: calibrated again.
    await expect(quantizeOnnx(fp32, unread, { int8Stride: 1, calibrated: fresh.calibrated })).rejects.toThrow(/calibration batches were read/);
    await expect(quantizeOnnx(fp32, unread, { int8Stride: 16, method: 'percentile', calibrated: all.calibrated })).rejects.toThrow(/calibration batches were read/);
  }, 120_000);

  it("calibrates each activation's range to what fp32 gives it: the maximum, and the minimum where it can be negative", async () => {
    const calib = [await batchOf(calibration.slice(0, 4))];
    const { calibrated } = await quantizeOnnx(fp32, calib);
    // The same tensors as outputs of the fp32 model, their extremes taken here.
    const proto = decodeModel(fp32);
    const names = [...calibrated.ranges.keys()];
    const inputName = proto.graph.input[0]!.name;
    for (const name of names) proto.graph.output.push({ name, type: { tensor_type: { elem_type: 1 } } } as never);
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(encodeModel(proto), { graphOptimizationLevel: 'basic' });
    const shape = proto.graph.input[0]!.type.tensor_type.shape.dim.map((d, i) => (i === 0 ? calib[0]!.batch : Number(d.dim_value)));
    const results = await session.run({ [inputName]: new ort.Tensor('float32', calib[0]!.input, shape) }, names.filter((n) => n !== inputName));
    const valuesOf = (name: string) => (name === inputName || !results[name] ? calib[0]!.input : (results[name]!.data as Float32Array));
    let negative = 0;
    for (const name of names) {
      const values = valuesOf(name);
      const [lo, hi] = values.reduce(([a, b], v) => [Math.min(a, v), Math.max(b, v)], [Infinity, -Infinity]);
      const range = calibrated.ranges.get(name)!;
      expect(range.hi).toBeCloseTo(hi, 4);
      // A ReLU's output (never negative) is calibrated on its maximum alone: its range starts at 0.
      if (lo < 0) negative++;
      expect(range.lo).toBeCloseTo(lo < 0 ? lo : 0, 4);
    }
    // The image input, scaled to [-1, 1], is the one activation below 0.
    expect(negative).toBeGreaterThan(0);
    expect(names.length).toBeGreaterThan(20);
    await session.release();
  }, 120_000);

  it('quantizes an input of pixels on their own grid, each pixel value a level, where the transform allows', () => {
    const tf = pixelGrid(pixelTransform(PREPROCESSING))!;
    expect(tf.scale).toBeCloseTo(1 / 127.5, 12);
    expect(tf.zero).toBe(127);
    expect(tf.shift).toBeCloseTo(0.5 / 127.5, 12);
    expect(pixelGrid(pixelTransform({ mean: [0, 0, 0], std: [255, 255, 255] }))).toEqual({ scale: 1 / 255, zero: 0, shift: 0 });
    // Channels that differ (caffe's means, torch's deviations): no single grid.
    expect(pixelGrid(pixelTransform({ mean: [103.939, 116.779, 123.68], std: [1, 1, 1] }))).toBeNull();
    expect(pixelGrid(pixelTransform({ mean: [124, 116, 104], std: [58.4, 57.1, 57.4] }))).toBeNull();
  });

  it('with inputPixels, the first convolution reads every pixel value exactly and lands closer to fp32', async () => {
    const saved = await loadModelDir(join(MODELS_DIR, 'mobilenet_v1_0.25_224'));
    const conv1 = exportOnnx(saved.modelJson, saved.weights, { outputLayer: 'conv1_relu' });
    const calib = [await batchOf(calibration.slice(0, 8))];
    // The convolution's output left in float: what differs from fp32 is the rounding of its input and weights.
    const [plain, grid] = [
      await quantizeOnnx(conv1, calib, { quantizeOutputs: false }),
      await quantizeOnnx(conv1, calib, { quantizeOutputs: false, inputPixels: pixelTransform(PREPROCESSING) }),
    ];
    expect([plain.report.pixelGrid, grid.report.pixelGrid]).toEqual([false, true]);
    const proto = decodeModel(grid.model);
    const producers = new Map(proto.graph.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
    const q = proto.graph.node.find((n) => n.op_type === 'QuantizeLinear')!;
    expect(producers.get(q.input[0]!)?.op_type).toBe('Add');
    expect(proto.graph.initializer.find((t) => t.name === q.input[2])!.raw_data[0]).toBe(127);

    const x = await batchOf(validation.images.slice(0, 8));
    const run = async (m: Uint8Array) => {
      const s = await createSession(m, { threads: 1 });
      const out = await s.run(x.input, x.batch);
      await s.dispose();
      return out;
    };
    const [o32, oPlain, oGrid] = [await run(conv1), await run(plain.model), await run(grid.model)];
    const meanError = (o: Float32Array) => o.reduce((sum, v, i) => sum + Math.abs(v - o32[i]!), 0) / o.length;
    // Half the pixel values of [-1, 1] in 255 steps round to a neighbour's level; on the grid none do.
    expect(meanError(oGrid)).toBeLessThan(0.8 * meanError(oPlain));
  }, 120_000);

  it('refuses a model without Conv or Gemm weights, and bad options', async () => {
    await expect(quantizeOnnx(fp32, [], { weightBits: 9 })).rejects.toThrow(/weightBits/);
    await expect(quantizeOnnx(fp32, [], { method: 'entropy' as never })).rejects.toThrow(/calibration method/);
    await expect(quantizeOnnx(fp32, [])).rejects.toThrow(/no calibration samples/);
  });
});

/** The tensors a model rounds to 8 bits (the inputs of its QuantizeLinear nodes). */
function roundedTensors(model: Uint8Array): string[] {
  return decodeModel(model).graph.node.filter((n) => n.op_type === 'QuantizeLinear').map((n) => n.input[0]!);
}

describe('quantizeClassifier (the int8 gate)', () => {
  it('keeps int8 when it agrees with fp32 on the validation images', async () => {
    const { model, decision } = await quantizeClassifier(fp32, MANIFEST, { calibration, validation }, { method: 'minmax', minAgreement: 0.95, maxAccuracyDrop: 0.05 });
    expect(decision.reason).toBeNull();
    expect(decision.used).toBe(true);
    expect(decision.images).toBe(48);
    expect(decision.agreement).toBeGreaterThanOrEqual(0.95);
    expect(decision.accuracyFp32).toBeGreaterThan(0.6);
    expect(Math.abs(decision.accuracyFp32! - decision.accuracyInt8!)).toBeLessThanOrEqual(0.05);
    expect(model).not.toBeNull();
    // The served model's last convolutions run as integer kernels: their outputs are rounded too.
    expect(roundedTensors(model!)).toEqual(expect.arrayContaining(['conv_pw_13_relu/relu6', 'conv_preds']));
    // The image on its pixel grid: the check quantizes with the manifest's preprocessing.
    expect(decision.quantization!.pixelGrid).toBe(true);
    const s8 = await createSession(model!, { threads: 1 });
    expect(s8.outputShape).toEqual([2]);
    await s8.dispose();
  }, 120_000);

  it("leaves the last convolution's output unrounded where told to", async () => {
    const opts = { method: 'minmax' as const, minAgreement: 0, maxAccuracyDrop: 1, quantizeOutputs: false };
    const { model } = await quantizeClassifier(fp32, MANIFEST, { calibration, validation: { images: validation.images.slice(0, 16), labels: validation.labels.slice(0, 16) } }, opts);
    const rounded = roundedTensors(model!);
    expect(rounded.length).toBeGreaterThan(0);
    expect(rounded).not.toContain('conv_pw_13_relu/relu6');
    expect(rounded).not.toContain('conv_preds');
  }, 120_000);

  it('keeps fp32, saying why, when a too coarse quantization disagrees with fp32', async () => {
    const { model, decision } = await quantizeClassifier(fp32, MANIFEST, { calibration, validation }, { method: 'minmax', weightBits: 2 });
    expect(model).toBeNull();
    expect(decision.used).toBe(false);
    expect(decision.agreement).toBeLessThan(0.995);
    // Every rung of the ladder is tried, each given up at the first batch with more disagreements than 99.5% of
    // 48 images allows (none).
    expect(decision.attempts!.map((a) => a.int8Stride)).toEqual([...INT8_STRIDES]);
    for (const a of decision.attempts!) {
      expect(a.reason).toMatch(/^int8 disagrees with fp32 on [1-9]\d* of the first 16 validation images; at most 0 of 48 may for 99.50% agreement$/);
      expect(a.images).toBe(16);
    }
    expect(decision).toMatchObject({ int8Stride: INT8_STRIDES.at(-1), images: 16, reason: decision.attempts!.at(-1)!.reason });
    expect(decision.quantization).toMatchObject({ weightBits: 2 });
    expect(decision.quantization!.fp32Leading).toBeGreaterThan(0);
  }, 120_000);

  it('stops at the first rung of the ladder that passes, and checks a full pass against the accuracy drop', async () => {
    const { decision } = await quantizeClassifier(fp32, MANIFEST, { calibration, validation }, { method: 'minmax', minAgreement: 0.9, maxAccuracyDrop: 0.1, int8Strides: [16, 1] });
    expect(decision).toMatchObject({ used: true, int8Stride: 16, images: 48 });
    expect(decision.attempts).toEqual([{ int8Stride: 16, agreement: decision.agreement, images: 48, reason: null }]);
    expect(decision.quantization!.fp32Leading).toBe(11);
    // One stride only where int8Stride is given.
    const one = await quantizeClassifier(fp32, MANIFEST, { calibration, validation }, { method: 'minmax', weightBits: 2, int8Stride: 4 });
    expect(one.decision.attempts!.map((a) => a.int8Stride)).toEqual([4]);
    await expect(quantizeClassifier(fp32, MANIFEST, { calibration, validation }, { int8Strides: [] })).rejects.toThrow(/int8Strides/);
  }, 120_000);

  it("takes fp32's classes where they are given, once the first batch confirms them, and computes them where it does not", async () => {
    const opts = { method: 'minmax' as const, minAgreement: 0, maxAccuracyDrop: 1, batch: 16 };
    const computed = await quantizeClassifier(fp32, MANIFEST, { calibration, validation }, opts);
    expect(computed.decision.fp32Given).toBe(false);
    const s32 = await createSession(fp32, { threads: 1 });
    const x = await batchOf(validation.images);
    const o32 = await s32.run(x.input, x.batch);
    await s32.dispose();
    const classes = validation.images.map((_, i) => +(o32[2 * i + 1]! > o32[2 * i]!));
    const given = await quantizeClassifier(fp32, MANIFEST, { calibration, validation: { ...validation, fp32: classes } }, opts);
    expect(given.decision).toMatchObject({ fp32Given: true, agreement: computed.decision.agreement, accuracyFp32: computed.decision.accuracyFp32 });
    // Right on the first batch, every later one flipped: they are taken as they are, and int8 disagrees with them.
    const flipped = classes.map((c, i) => (i < 16 ? c : 1 - c));
    const taken = await quantizeClassifier(fp32, MANIFEST, { calibration, validation: { ...validation, fp32: flipped } }, opts);
    expect(taken.decision.fp32Given).toBe(true);
    expect(taken.decision.agreement).toBeLessThan(0.5);
    // Wrong on the first batch: fp32 runs over every image.
    const wrong = classes.map((c) => 1 - c);
    const refused = await quantizeClassifier(fp32, MANIFEST, { calibration, validation: { ...validation, fp32: wrong } }, opts);
    expect(refused.decision).toMatchObject({ fp32Given: false, agreement: computed.decision.agreement });
    expect(Object.keys(refused.decision.seconds!).sort()).toEqual(['decode', 'fp32', 'int8', 'quantize', 'total']);
  }, 120_000);

  it('keeps fp32 when there is nothing to check it on, or the images do not decode', async () => {
    const none = await quantizeClassifier(fp32, MANIFEST, { calibration, validation: { images: [], labels: [] } });
    expect(none).toMatchObject({ model: null, decision: { used: false, reason: 'no validation images to check int8 against fp32' } });
    const junk = await quantizeClassifier(fp32, MANIFEST, { calibration: [new Uint8Array([1, 2, 3])], validation });
    expect(junk.model).toBeNull();
    expect(junk.decision.reason).toMatch(/quantization failed: no calibration samples/);
  }, 60_000);
});

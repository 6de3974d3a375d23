// A model quantized on the pixel grid of its normalisation, rewritten to read 8-bit pixels as they are: on real photos
// through MobileNet v1 0.25, the same outputs bit for bit as the quantized model given the normalised pixels, from a
// session opened directly and from both session hosts; floats given to it put on the grid as its QuantizeLinear did.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage, normalizeInto, pixelTransform, type PixelTransform } from '../src/image';
import { LocalSessionHost } from '../src/local-host';
import { exportOnnx } from '../src/onnx-export';
import { decodeModel, encodeModel, TensorDataType } from '../src/onnx-proto';
import { openForPixels, pixelInputModel, toPixelGrid, widenPixels, widenToFourChannels } from '../src/pixel-input';
import { pixelGrid, quantizeOnnx } from '../src/quantize';
import { createSession, loadOrt } from '../src/session';
import { SessionHost } from '../src/session-host';
import { loadModelDir, MODELS_DIR } from './helpers';

const SIZE = 96;
const PER = SIZE * SIZE * 3;
const TO_UNIT = pixelTransform({ scale: 1 / 127.5, offset: -1 });
const DATA = join(MODELS_DIR, '../datasets/dogs-vs-cats/validation/cats');

let fp32: Uint8Array;
let int8: Uint8Array;
let pixels: Uint8Array;
let values: Float32Array;
const BATCH = 6;

const normalized = (px: Uint8Array, t: PixelTransform = TO_UNIT) => {
  const out = new Float32Array(px.length);
  normalizeInto(px, t, out);
  return out;
};

beforeAll(async () => {
  const saved = await loadModelDir(join(MODELS_DIR, 'mobilenet_v1_0.25_224'));
  (saved.modelJson.modelTopology as { model_config: { config: { layers: { config: { batch_input_shape?: number[] } }[] } } }).model_config.config.layers[0]!.config.batch_input_shape = [null as never, SIZE, SIZE, 3];
  fp32 = exportOnnx(saved.modelJson, saved.weights, { outputLayer: 'conv_pw_13_relu' });
  const files = (await readdir(DATA)).sort().slice(0, 2 * BATCH);
  const decoded = await Promise.all(files.map(async (f) => decodeImage(new Uint8Array(await readFile(join(DATA, f))), SIZE, 'triangle')));
  const all = new Uint8Array(decoded.length * PER);
  decoded.forEach((d, i) => all.set(d, i * PER));
  const calibration = { input: normalized(all.subarray(0, BATCH * PER)), batch: BATCH };
  int8 = (await quantizeOnnx(fp32, [calibration], { inputPixels: TO_UNIT })).model;
  pixels = all.slice(BATCH * PER);
  values = normalized(pixels);
}, 120_000);

describe('pixelInputModel', () => {
  it('makes a model quantized on the pixel grid read uint8 pixels: its Add and QuantizeLinear gone, the same outputs bit for bit', async () => {
    const rewritten = pixelInputModel(int8, TO_UNIT)!;
    expect(rewritten).not.toBeNull();
    const [before, after] = [decodeModel(int8).graph, decodeModel(rewritten).graph];
    expect(after.input[0]!.type.tensor_type.elem_type).toBe(TensorDataType.UINT8);
    const count = (g: typeof before, op: string) => g.node.filter((n) => n.op_type === op).length;
    expect(count(after, 'QuantizeLinear')).toBe(count(before, 'QuantizeLinear') - 1);
    expect(count(after, 'Add')).toBe(count(before, 'Add') - 1);
    expect(after.initializer.some((t) => t.name.endsWith('/grid_shift'))).toBe(false);
    // What reads the pixels: the Transpose to NCHW, then the first DequantizeLinear.
    const readers = (name: string) => after.node.filter((n) => n.input.includes(name)).map((n) => n.op_type);
    const first = after.node.find((n) => n.input[0] === after.input[0]!.name)!;
    expect(first.op_type).toBe('Transpose');
    expect(readers(first.output[0]!)).toEqual(['DequantizeLinear']);

    const [s8, sPixels] = [await createSession(int8, { threads: 1 }), await createSession(rewritten, { threads: 1 })];
    try {
      expect([s8.inputType, sPixels.inputType]).toEqual(['float32', 'uint8']);
      const [want, got] = [await s8.run(values, BATCH), await sPixels.run(pixels, BATCH)];
      expect(Math.max(...want)).toBeGreaterThan(1);
      expect(Array.from(got)).toEqual(Array.from(want));
      await expect(sPixels.run(values, BATCH)).rejects.toThrow(/8-bit pixels/);
      await expect(s8.run(pixels, BATCH)).rejects.toThrow(/float32 values/);
    } finally {
      await Promise.all([s8.dispose(), sPixels.dispose()]);
    }
  }, 120_000);

  it('answers null for a float model, one quantized off the grid, another transform, and channels in BGR order', async () => {
    const offGrid = (await quantizeOnnx(fp32, [{ input: values, batch: BATCH }])).model;
    expect(pixelInputModel(fp32, TO_UNIT)).toBeNull();
    expect(pixelInputModel(offGrid, TO_UNIT)).toBeNull();
    expect(pixelInputModel(int8, pixelTransform({ mean: [0, 0, 0], std: [255, 255, 255] }))).toBeNull();
    expect(pixelInputModel(int8, { ...TO_UNIT, bgr: true })).toBeNull();
  }, 120_000);
});

describe('widenToFourChannels', () => {
  it("gives the image's int8 convolution a fourth input channel of zero weights: RGBX in, the RGB model's outputs bit for bit", async () => {
    const model = decodeModel(pixelInputModel(int8, TO_UNIT)!);
    const weightsOf = (m: typeof model) => m.graph.initializer.find((t) => t.name === 'conv1/kernel/int8')!;
    const rgbWeights = weightsOf(model).raw_data.slice();
    expect(widenToFourChannels(model)).toBe(true);
    expect(model.graph.input[0]!.type.tensor_type.shape.dim.map((d) => d.dim_value ?? d.dim_param)).toEqual(['batch', SIZE, SIZE, 4]);
    const w = weightsOf(model);
    const [out, , kh, kw] = w.dims.map(Number) as [number, number, number, number];
    expect(w.dims.map(Number)).toEqual([out, 4, kh, kw]);
    const taps = kh * kw;
    for (let o = 0; o < out; o++) {
      expect(Array.from(w.raw_data.subarray(o * 4 * taps, o * 4 * taps + 3 * taps))).toEqual(Array.from(rgbWeights.subarray(o * 3 * taps, (o + 1) * 3 * taps)));
      expect(w.raw_data.subarray(o * 4 * taps + 3 * taps, (o + 1) * 4 * taps).every((v) => v === 0)).toBe(true);
    }
    // A model widened once is not widened again.
    expect(widenToFourChannels(model)).toBe(false);

    const [rgb, rgbx] = [await createSession(pixelInputModel(int8, TO_UNIT)!, { threads: 1 }), await createSession(encodeModel(model), { threads: 1 })];
    try {
      const wide = new Uint8Array((pixels.length / 3) * 4);
      widenPixels(pixels, wide);
      const want = await rgb.run(pixels, BATCH);
      expect(Array.from(await rgbx.run(wide, BATCH))).toEqual(Array.from(want));
      // Whatever the fourth channel holds.
      for (let p = 3; p < wide.length; p += 4) wide[p] = (p * 37) & 255;
      expect(Array.from(await rgbx.run(wide, BATCH))).toEqual(Array.from(want));
    } finally {
      await Promise.all([rgb.dispose(), rgbx.dispose()]);
    }
  }, 120_000);

  it('leaves alone a model that does not read pixels (float input, or its first convolution in fp32), or scales its weights by input channel', async () => {
    expect(widenToFourChannels(decodeModel(int8))).toBe(false);
    const byInput = decodeModel(pixelInputModel(int8, TO_UNIT)!);
    byInput.graph.node.find((n) => n.name === 'conv1/kernel/DequantizeLinear')!.attribute.find((a) => a.name === 'axis')!.i = 1;
    expect(widenToFourChannels(byInput)).toBe(false);
    // From input / 4, the convolutions on 48 px maps and larger stay fp32, the image among them.
    const firstFp32 = (await quantizeOnnx(fp32, [{ input: values, batch: BATCH }], { inputPixels: TO_UNIT, int8Stride: 4 })).model;
    const opened = await openForPixels(firstFp32, 1, TO_UNIT);
    try {
      expect([opened.widened, opened.model.inputType, opened.model.inputShape]).toEqual([false, 'float32', [SIZE, SIZE, 3]]);
    } finally {
      await opened.model.dispose();
    }
    const widened = await openForPixels(int8, 1, TO_UNIT);
    try {
      expect([widened.widened, widened.model.inputType, widened.model.inputShape]).toEqual([true, 'uint8', [SIZE, SIZE, 4]]);
    } finally {
      await widened.model.dispose();
    }
  }, 120_000);

  it('widenPixels writes RGBX, into any offset', () => {
    const rgb = Uint8Array.from({ length: 3 * 1001 }, (_, i) => (i * 7 + 3) & 255);
    const want = Uint8Array.from({ length: 4 * 1001 }, (_, i) => (i % 4 === 3 ? 0 : rgb[Math.floor(i / 4) * 3 + (i % 4)]!));
    const aligned = new Uint8Array(4 * 1001).fill(9);
    widenPixels(rgb, aligned);
    expect(Array.from(aligned)).toEqual(Array.from(want));
    const unaligned = new Uint8Array(4 * 1001 + 1).fill(9).subarray(1);
    widenPixels(rgb, unaligned);
    expect(Array.from(unaligned)).toEqual(Array.from(want));
    expect(() => widenPixels(rgb.subarray(1), aligned)).toThrow(/not RGB pixels/);
  });
});

describe('toPixelGrid', () => {
  it("puts values where the input's Add and QuantizeLinear put them, ties and values beyond 0..255 included", async () => {
    // Every pixel value normalised, the points halfway between them, values between, and values past both ends.
    const pixelValues = Array.from({ length: 256 }, (_, v) => v);
    const between = Array.from({ length: 4000 }, (_, i) => -3 + (i * 261.7) / 4000);
    const px = Float32Array.from([...pixelValues, ...pixelValues.map((v) => v + 0.5), ...between, 300, -40]);
    const x = px.map((v) => (v - TO_UNIT.sub[0]) * TO_UNIT.mul[0]);
    const ours = new Uint8Array(x.length);
    toPixelGrid(x, TO_UNIT, ours);
    expect(Array.from(ours.subarray(0, 256))).toEqual(pixelValues);
    // ONNX Runtime's own Add and QuantizeLinear on the same values.
    const grid = pixelGrid(TO_UNIT)!;
    const f32 = (name: string, v: number) => ({ name, dims: [], data_type: TensorDataType.FLOAT, raw_data: new Uint8Array(Float32Array.of(v).buffer) });
    const model = {
      ir_version: 8,
      opset_import: [{ domain: '', version: 13 }],
      producer_name: 'test',
      producer_version: '1',
      graph: {
        name: 'grid',
        node: [
          { op_type: 'Add', name: 'shift', input: ['x', 'shift'], output: ['shifted'], attribute: [] },
          { op_type: 'QuantizeLinear', name: 'q', input: ['shifted', 'scale', 'zero'], output: ['y'], attribute: [] },
        ],
        initializer: [f32('shift', grid.shift), f32('scale', grid.scale), { name: 'zero', dims: [], data_type: TensorDataType.UINT8, raw_data: Uint8Array.of(grid.zero) }],
        input: [{ name: 'x', type: { tensor_type: { elem_type: TensorDataType.FLOAT, shape: { dim: [{ dim_value: x.length }] } } } }],
        output: [{ name: 'y', type: { tensor_type: { elem_type: TensorDataType.UINT8, shape: { dim: [{ dim_value: x.length }] } } } }],
      },
      metadata_props: [],
    };
    const ort = await loadOrt();
    const session = await ort.InferenceSession.create(encodeModel(model));
    try {
      const out = await session.run({ x: new ort.Tensor('float32', x, [x.length]) });
      expect(Array.from(ours)).toEqual(Array.from(out.y!.data as Uint8Array));
    } finally {
      await session.release();
    }
    expect(() => toPixelGrid(x, pixelTransform({ mean: [1, 2, 3], std: [1, 1, 1] }), ours)).toThrow(/no pixel grid/);
  });
});

describe('session hosts', () => {
  const hosts: { close(): Promise<void> }[] = [];
  afterAll(async () => Promise.all(hosts.map((h) => h.close())));

  it('open a model quantized on the grid of their transform to read pixels, and give it floats on the grid', async () => {
    const s8 = await createSession(int8, { threads: 1 });
    const want = await s8.run(values, BATCH);
    await s8.dispose();
    for (const host of [new SessionHost({ workers: 1, threads: 1 }), new LocalSessionHost(1)]) {
      hosts.push(host);
      const session = await host.open(int8, { transform: TO_UNIT });
      const plain = await host.open(int8);
      try {
        expect([session.inputType, plain.inputType]).toEqual(['uint8', 'float32']);
        // The session reads RGBX (its first convolution widened) and is given RGB, as its inputShape says.
        expect([session.inputShape, plain.inputShape]).toEqual([[SIZE, SIZE, 3], [SIZE, SIZE, 3]]);
        expect(Array.from(await session.run(pixels.slice(), BATCH))).toEqual(Array.from(want));
        expect(Array.from(await session.run(values.slice(), BATCH))).toEqual(Array.from(want));
        expect(Array.from(await plain.run(values.slice(), BATCH))).toEqual(Array.from(want));
      } finally {
        await Promise.all([session.dispose(), plain.dispose()]);
      }
    }
  }, 120_000);
});

// Depthwise convolutions of an int8 model padded to a multiple of 16 channels (ONNX Runtime's fast int8 depthwise
// kernels): on real photos through MobileNet v1 0.25 (whose first depthwise convolution has 8), the same outputs bit
// for bit, the padded channels zeros in the weights of the convolutions around it.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { padDepthwise } from '../src/depthwise-pad';
import { decodeImage, normalizeInto, pixelTransform } from '../src/image';
import { exportOnnx } from '../src/onnx-export';
import { decodeModel, encodeModel, type OnnxModel } from '../src/onnx-proto';
import { quantizeOnnx } from '../src/quantize';
import { createSession } from '../src/session';
import { loadModelDir, MODELS_DIR } from './helpers';

const SIZE = 96;
const BATCH = 6;
const TO_UNIT = pixelTransform({ scale: 1 / 127.5, offset: -1 });
const DATA = join(MODELS_DIR, '../datasets/dogs-vs-cats/validation/dogs');

let fp32: Uint8Array;
let int8: Uint8Array;
let values: Float32Array;

beforeAll(async () => {
  const saved = await loadModelDir(join(MODELS_DIR, 'mobilenet_v1_0.25_224'));
  (saved.modelJson.modelTopology as { model_config: { config: { layers: { config: { batch_input_shape?: number[] } }[] } } }).model_config.config.layers[0]!.config.batch_input_shape = [null as never, SIZE, SIZE, 3];
  fp32 = exportOnnx(saved.modelJson, saved.weights, { outputLayer: 'conv_pw_13_relu' });
  const files = (await readdir(DATA)).sort().slice(0, 2 * BATCH);
  const per = SIZE * SIZE * 3;
  const all = new Float32Array(files.length * per);
  for (const [i, f] of files.entries()) normalizeInto(await decodeImage(new Uint8Array(await readFile(join(DATA, f))), SIZE, 'triangle'), TO_UNIT, all, i * per);
  int8 = (await quantizeOnnx(fp32, [{ input: all.slice(0, BATCH * per), batch: BATCH }], { inputPixels: TO_UNIT })).model;
  values = all.slice(BATCH * per);
}, 120_000);

const initializer = (m: OnnxModel, name: string) => m.graph.initializer.find((t) => t.name === name)!;

describe('padDepthwise', () => {
  it('pads the first depthwise convolution (8 channels) to 16, the same outputs bit for bit', async () => {
    const model = decodeModel(int8);
    const before = Array.from(initializer(model, 'conv_pw_1/kernel/int8').raw_data);
    expect(padDepthwise(model)).toBe(1); // the others have 16 channels or more, multiples of 16
    expect(model.graph.node.find((n) => n.name === 'conv_dw_1/Conv')!.attribute.find((a) => a.name === 'group')!.i).toBe(16);
    expect(initializer(model, 'conv1/kernel/int8').dims.map(Number)).toEqual([16, 3, 3, 3]);
    expect(initializer(model, 'conv_dw_1/depthwise_kernel/int8').dims.map(Number)).toEqual([16, 1, 3, 3]);
    expect(initializer(model, 'conv_dw_1/depthwise_kernel_bias/int32').dims.map(Number)).toEqual([16]);
    // The convolution after it reads 16 channels, the last 8 with zero weights.
    const after = initializer(model, 'conv_pw_1/kernel/int8');
    const outs = Number(after.dims[0]);
    expect(after.dims.map(Number)).toEqual([outs, 16, 1, 1]);
    for (let o = 0; o < outs; o++) {
      expect(Array.from(after.raw_data.subarray(o * 16, o * 16 + 8))).toEqual(before.slice(o * 8, o * 8 + 8));
      expect(after.raw_data.subarray(o * 16 + 8, o * 16 + 16).every((v) => v === 0)).toBe(true);
    }
    // Each padded channel's bias scale is its input's scale times its weight scale (1), as in every other channel:
    // ONNX Runtime runs a convolution as one integer kernel only so.
    const floats = (name: string) => Array.from(new Float32Array(Uint8Array.from(initializer(model, name).raw_data).buffer));
    for (const [conv, input] of [
      ['conv1/kernel', 'input/nchw/q_scale'],
      ['conv_dw_1/depthwise_kernel', 'conv1_relu/relu6/q_scale'],
    ]) {
      const [x] = floats(input!);
      const [w, b] = [floats(`${conv}/w_scale`), floats(`${conv}_bias/b_scale`)];
      expect(w.slice(8)).toEqual(Array(8).fill(1));
      expect(b.slice(8)).toEqual(Array(8).fill(x));
      expect(Math.abs(b[0]! - x! * w[0]!) / b[0]!).toBeLessThan(1e-6);
    }
    expect(padDepthwise(model)).toBe(0);

    const [plain, padded] = [await createSession(int8, { threads: 1 }), await createSession(encodeModel(model), { threads: 1 })];
    try {
      const want = await plain.run(values, BATCH);
      expect(Math.max(...want)).toBeGreaterThan(1);
      expect(Array.from(await padded.run(values, BATCH))).toEqual(Array.from(want));
    } finally {
      await Promise.all([plain.dispose(), padded.dispose()]);
    }
  }, 120_000);

  it('leaves alone a depthwise convolution whose input is also an output of the model', () => {
    const model = decodeModel(int8);
    model.graph.output.push({ ...model.graph.output[0]!, name: 'conv1_relu/relu6/dequantized' });
    expect(padDepthwise(model)).toBe(0);
  });

  it('leaves a float model alone', () => {
    const model = decodeModel(fp32);
    expect(padDepthwise(model)).toBe(0);
    expect(Buffer.from(encodeModel(model)).equals(Buffer.from(fp32))).toBe(true);
  });
});

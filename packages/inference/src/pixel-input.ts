// A quantized model that reads 8-bit pixels as they are. quantizeOnnx with `inputPixels` quantizes the model's input
// on the pixel grid of its normalisation (pixelGrid): pixel v, normalised and shifted by the grid's shift, lands on
// level v exactly. The model's float input, the shift's Add and the input's QuantizeLinear then only turn pixels back
// into themselves; rewritten, the model takes the pixels as uint8 and its first DequantizeLinear reads them (through
// the Transpose that reorders them, where there is one). Its outputs are those of the float model given the same
// pixels normalised, bit for bit, and a run skips the normalisation and those two nodes (3-8% of MobileNet's
// int8 pass at 288 px, by machine).
//
// A session of such a model given float values (pixels normalised, or resampled between pixels by augmentation)
// puts them back on the pixel grid first (toPixelGrid): what the QuantizeLinear did.
//
// Where a session opens such a model (openForPixels), its first convolution, when in int8, is also widened to read
// four channels, the fourth with zero weights (widenToFourChannels): ONNX Runtime's int8 convolutions take their
// fast path (MLAS's symmetric, indirect convolution) only where the input channels are a multiple of four; with
// three, the image's convolution was the slowest node of MobileNet's int8 pass. The session then widens the RGB
// pixels it is given to RGBX (SessionInput); the outputs are the same bit for bit.
import { padDepthwise } from './depthwise-pad';
import { normalizeInto, roundHalfEven, type PixelTransform } from './image';
import { decodeModel, encodeModel, initializerNamed, intAttribute, scalarValue, soleReader, TensorDataType, writerOf, type OnnxModel } from './onnx-proto';
import { withPixelKernels } from './pixel-wasm';
import { pixelGrid } from './quantize';
import { createSession, type OrtModel } from './session';

const QUANTIZE = 'QuantizeLinear';

/**
 * `onnx` rewritten to take 8-bit RGB pixels (uint8, the float input's shape) where its input is quantized on the
 * pixel grid of `t`; null where it is not (a float model, another quantization, channels reordered to BGR).
 */
export function pixelInputModel(onnx: Uint8Array, t: PixelTransform): Uint8Array | null {
  const model = readingPixels(onnx, t);
  return model && encodeModel(model);
}

/** pixelInputModel's rewrite, decoded. */
function readingPixels(onnx: Uint8Array, t: PixelTransform): OnnxModel | null {
  // A float model has no QuantizeLinear: most models opened are, and need not be decoded.
  if (!Buffer.from(onnx.buffer, onnx.byteOffset, onnx.byteLength).includes(QUANTIZE)) return null;
  const grid = t.bgr ? null : pixelGrid(t);
  if (!grid) return null;
  const model = decodeModel(onnx);
  const g = model.graph;
  if (g.input.length !== 1 || g.input[0]!.type.tensor_type.elem_type !== TensorDataType.FLOAT) return null;
  const only = (name: string, op: string) => soleReader(g, name, op);
  const scalar = (name: string, type: typeof TensorDataType.FLOAT | typeof TensorDataType.UINT8) => scalarValue(initializerNamed(g, name), type);
  // The pixels' tensor in the graph: the input, or the Transpose that reorders it.
  const input = g.input[0]!.name;
  const pixels = only(input, 'Transpose')?.output[0] ?? input;
  const shiftAdd = grid.shift ? only(pixels, 'Add') : null;
  if (grid.shift && !shiftAdd) return null;
  if (shiftAdd && !(shiftAdd.input[0] === pixels && scalar(shiftAdd.input[1]!, TensorDataType.FLOAT) === Math.fround(grid.shift))) return null;
  const quantize = only(shiftAdd ? shiftAdd.output[0]! : pixels, QUANTIZE);
  if (!quantize) return null;
  const [, scale, zero] = quantize.input;
  if (scale === undefined || zero === undefined) return null;
  if (scalar(scale, TensorDataType.FLOAT) !== Math.fround(grid.scale) || scalar(zero, TensorDataType.UINT8) !== grid.zero) return null;
  const levels = quantize.output[0]!;
  g.node = g.node.filter((n) => n !== quantize && n !== shiftAdd);
  for (const n of g.node) n.input = n.input.map((i) => (i === levels ? pixels : i));
  const used = new Set(g.node.flatMap((n) => n.input));
  g.initializer = g.initializer.filter((i) => used.has(i.name));
  g.input[0]!.type.tensor_type.elem_type = TensorDataType.UINT8;
  return model;
}

/**
 * Widens a model that reads 8-bit RGB pixels (readingPixels) to read RGBX, where what reads them is an NHWC-to-NCHW
 * Transpose, then a DequantizeLinear, then only an int8 convolution over all three channels (group 1, its weights a
 * DequantizeLinear of int8 values): the input's last dimension becomes 4 and the weights get a fourth input channel
 * of zeros. Whatever the fourth channel holds, the outputs are the RGB model's. False (the model untouched) where the
 * model is not of that shape.
 */
export function widenToFourChannels(model: OnnxModel): boolean {
  const g = model.graph;
  const input = g.input[0]!;
  const dims = input.type.tensor_type.shape.dim;
  if (input.type.tensor_type.elem_type !== TensorDataType.UINT8 || dims.length !== 4 || dims[3]!.dim_value !== 3) return false;
  const only = (name: string, op: string) => soleReader(g, name, op);
  const transpose = only(input.name, 'Transpose');
  const perm = transpose?.attribute.find((a) => a.name === 'perm')?.ints?.map(Number);
  if (!transpose || perm?.join() !== '0,3,1,2') return false;
  const dequantize = only(transpose.output[0]!, 'DequantizeLinear');
  // One scale for all channels (a per-channel one would need a fourth).
  if (!dequantize || initializerNamed(g, dequantize.input[1])?.dims.length !== 0) return false;
  const conv = only(dequantize.output[0]!, 'Conv');
  if (!conv || conv.input[0] !== dequantize.output[0] || intAttribute(conv, 'group', 1) !== 1) return false;
  const weightsDq = writerOf(g, conv.input[1], 'DequantizeLinear');
  if (!weightsDq) return false;
  // One scale for all, or one per output channel (axis 0; ONNX's default is 1): one per input channel would need a
  // fourth.
  const scales = initializerNamed(g, weightsDq.input[1]);
  if (!scales || (scales.dims.length !== 0 && intAttribute(weightsDq, 'axis', 1) !== 0)) return false;
  const weights = initializerNamed(g, weightsDq.input[0]);
  if (!weights || weights.data_type !== TensorDataType.INT8 || weights.dims.length !== 4 || Number(weights.dims[1]) !== 3) return false;
  if (soleReader(g, weights.name, 'DequantizeLinear') !== weightsDq) return false;
  const [out, , kh, kw] = weights.dims.map(Number) as [number, number, number, number];
  const taps = kh * kw;
  const wide = new Uint8Array(out * 4 * taps);
  for (let o = 0; o < out; o++) wide.set(weights.raw_data.subarray(o * 3 * taps, (o + 1) * 3 * taps), o * 4 * taps);
  weights.raw_data = wide;
  weights.dims = [out, 4, kh, kw];
  dims[3] = { dim_value: 4 };
  return true;
}

/**
 * RGB pixels (3 bytes each) written as RGBX (4 bytes each, the fourth 0) into `out`, in WebAssembly (wasm/widen.c):
 * 0.055 ms a 288 px image with the copies in and out of its memory, where a JavaScript loop of 32-bit words took
 * 0.09-0.14.
 */
export function widenPixels(rgb: Uint8Array, out: Uint8Array): void {
  const n = rgb.length / 3;
  if (!Number.isInteger(n) || out.length < 4 * n) throw new RangeError(`${rgb.length} bytes are not RGB pixels that fit in ${out.length}`);
  withPixelKernels((k, scratch) => {
    const srcAt = scratch.take(rgb.length + 4); // widen_rgbx reads up to 4 bytes past the last pixel
    const outAt = scratch.take(4 * n);
    const buffer = scratch.ready();
    new Uint8Array(buffer, srcAt, rgb.length).set(rgb);
    k.widen_rgbx(srcAt, outAt, n);
    out.set(new Uint8Array(buffer, outAt, 4 * n));
  });
}

/**
 * Float model inputs (`t`'s normalisation of pixels, or values between pixels) put on the pixel grid of `t` into
 * `out`, as the input's QuantizeLinear put them: (value + shift) / scale in float32, rounded half to even, plus the zero
 * point, clamped to 0..255. Throws where `t` has no pixel grid (pixelInputModel would have answered null).
 */
export function toPixelGrid(values: Float32Array, t: PixelTransform, out: Uint8Array): void {
  const grid = pixelGrid(t);
  if (!grid) throw new Error('the normalisation has no pixel grid');
  if (out.length < values.length) throw new RangeError(`${values.length} values do not fit in ${out.length}`);
  const shift = Math.fround(grid.shift);
  const scale = Math.fround(grid.scale);
  for (let i = 0; i < values.length; i++) {
    const r = roundHalfEven(Math.fround(Math.fround(values[i]! + shift) / scale)) + grid.zero;
    out[i] = r < 0 ? 0 : r > 255 ? 255 : r;
  }
}

/** A session opened by openForPixels: the model, and whether it reads RGBX where its runs are given RGB. */
export interface PixelSession {
  model: OrtModel;
  widened: boolean;
}

/**
 * A session for a host (session-worker.ts, local-host.ts) that takes RGB pixels normalised by `transform`: where the
 * model is quantized on that transform's pixel grid, it is opened to read the pixels as they are (pixelInputModel),
 * widened to RGBX where its first convolution is in int8 (widenToFourChannels), its depthwise convolutions padded to
 * ONNX Runtime's fast kernels (padDepthwise).
 */
export async function openForPixels(onnx: Uint8Array, threads: number, transform: PixelTransform | null): Promise<PixelSession> {
  const model = transform && readingPixels(onnx, transform);
  if (!model) return { model: await createSession(onnx, { threads }), widened: false };
  const widened = widenToFourChannels(model);
  padDepthwise(model);
  return { model: await createSession(encodeModel(model), { threads }), widened };
}

/**
 * What a hosted session's model takes from what a run was given (HostedSession.run): pixels (Uint8Array) as they are
 * for a model that reads pixels (widened to RGBX for a widened one), normalised by the transform for a float model;
 * values (Float32Array) as they are for a float model, put on the pixel grid for a model that reads pixels. With
 * `reuse`, the converted values are written into buffers kept from run to run (where runs go one at a time).
 */
export class SessionInput {
  private floats = new Float32Array(0);
  private pixels = new Uint8Array(0);
  private rgbx = new Uint8Array(0);
  private readonly model: OrtModel;
  private readonly widened: boolean;
  /** One sample's shape as runs give it: the model's, with 3 channels where the model reads RGBX. */
  readonly inputShape: readonly number[];

  constructor(
    opened: PixelSession,
    private readonly transform: PixelTransform | null,
    private readonly reuse: boolean,
  ) {
    this.model = opened.model;
    this.widened = opened.widened;
    this.inputShape = this.widened ? [...this.model.inputShape.slice(0, -1), 3] : this.model.inputShape;
  }

  of(input: Uint8Array | Float32Array): Uint8Array | Float32Array {
    const n = input.length;
    if (this.model.inputType === 'uint8') {
      let pixels: Uint8Array;
      if (input instanceof Uint8Array) pixels = input;
      else {
        if (!this.transform) throw new Error('the session takes 8-bit pixels');
        if (!this.reuse || this.pixels.length < n) this.pixels = new Uint8Array(n);
        pixels = this.pixels.subarray(0, n);
        toPixelGrid(input, this.transform, pixels);
      }
      if (!this.widened) return pixels;
      const wide = (n / 3) * 4;
      if (!this.reuse || this.rgbx.length < wide) this.rgbx = new Uint8Array(wide);
      const out = this.rgbx.subarray(0, wide);
      widenPixels(pixels, out);
      return out;
    }
    if (input instanceof Float32Array) return input;
    if (!this.transform) throw new Error('the session takes float32 input');
    if (!this.reuse || this.floats.length < n) this.floats = new Float32Array(n);
    const out = this.floats.subarray(0, n);
    normalizeInto(input, this.transform, out);
    return out;
  }
}

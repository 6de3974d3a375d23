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
import { normalizeInto, roundHalfEven, type PixelTransform } from './image';
import { decodeModel, encodeModel, TensorDataType, type OnnxModel, type OnnxNode } from './onnx-proto';
import { pixelGrid } from './quantize';
import { createSession, type OrtModel } from './session';

const QUANTIZE = 'QuantizeLinear';

/**
 * `onnx` rewritten to take 8-bit RGB pixels (uint8, the float input's shape) where its input is quantized on the
 * pixel grid of `t`; null where it is not (a float model, another quantization, channels reordered to BGR).
 */
export function pixelInputModel(onnx: Uint8Array, t: PixelTransform): Uint8Array | null {
  // A float model has no QuantizeLinear: most models opened are, and need not be decoded.
  if (!Buffer.from(onnx.buffer, onnx.byteOffset, onnx.byteLength).includes(QUANTIZE)) return null;
  const grid = t.bgr ? null : pixelGrid(t);
  if (!grid) return null;
  const model = decodeModel(onnx);
  const g = model.graph;
  if (g.input.length !== 1 || g.input[0]!.type.tensor_type.elem_type !== TensorDataType.FLOAT) return null;
  const readersOf = (name: string) => g.node.filter((n) => n.input.includes(name));
  const only = (name: string, op: string): OnnxNode | null => {
    const r = readersOf(name);
    return r.length === 1 && r[0]!.op_type === op && !r[0]!.domain ? r[0]! : null;
  };
  // The pixels' tensor in the graph: the input, or the Transpose that reorders it.
  const input = g.input[0]!.name;
  const pixels = only(input, 'Transpose')?.output[0] ?? input;
  const shiftAdd = grid.shift ? only(pixels, 'Add') : null;
  if (grid.shift && !shiftAdd) return null;
  if (shiftAdd && !(shiftAdd.input[0] === pixels && scalar(model, shiftAdd.input[1]!, 'float') === Math.fround(grid.shift))) return null;
  const quantize = only(shiftAdd ? shiftAdd.output[0]! : pixels, QUANTIZE);
  if (!quantize) return null;
  const [, scale, zero] = quantize.input;
  if (scale === undefined || zero === undefined) return null;
  if (scalar(model, scale, 'float') !== Math.fround(grid.scale) || scalar(model, zero, 'uint8') !== grid.zero) return null;
  const levels = quantize.output[0]!;
  g.node = g.node.filter((n) => n !== quantize && n !== shiftAdd);
  for (const n of g.node) n.input = n.input.map((i) => (i === levels ? pixels : i));
  const used = new Set(g.node.flatMap((n) => n.input));
  g.initializer = g.initializer.filter((i) => used.has(i.name));
  g.input[0]!.type.tensor_type.elem_type = TensorDataType.UINT8;
  return encodeModel(model);
}

/** A scalar initializer's value (float32 or uint8 as `type` says), or NaN where `name` is not one. */
function scalar(model: OnnxModel, name: string, type: 'float' | 'uint8'): number {
  const t = model.graph.initializer.find((i) => i.name === name);
  const want = type === 'float' ? TensorDataType.FLOAT : TensorDataType.UINT8;
  if (!t || t.data_type !== want || t.dims.length !== 0) return NaN;
  const raw = t.raw_data;
  if (type === 'uint8') return raw.length === 1 ? raw[0]! : NaN;
  return raw.length === 4 ? new DataView(raw.buffer, raw.byteOffset, 4).getFloat32(0, true) : NaN;
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

/**
 * A session for a host (session-worker.ts, local-host.ts) that takes RGB pixels normalised by `transform`: where the
 * model is quantized on that transform's pixel grid, it is opened to read the pixels as they are (pixelInputModel).
 */
export async function openForPixels(onnx: Uint8Array, threads: number, transform: PixelTransform | null): Promise<OrtModel> {
  return createSession((transform && pixelInputModel(onnx, transform)) ?? onnx, { threads });
}

/**
 * What a hosted session's model takes from what a run was given (HostedSession.run): pixels (Uint8Array) as they are
 * for a model that reads pixels, normalised by the transform for a float model; values (Float32Array) as they are for
 * a float model, put on the pixel grid for a model that reads pixels. With `reuse`, the converted values are written
 * into one buffer kept from run to run (where runs go one at a time).
 */
export class SessionInput {
  private floats = new Float32Array(0);
  private pixels = new Uint8Array(0);

  constructor(
    private readonly model: OrtModel,
    private readonly transform: PixelTransform | null,
    private readonly reuse: boolean,
  ) {}

  of(input: Uint8Array | Float32Array): Uint8Array | Float32Array {
    const n = input.length;
    if (this.model.inputType === 'uint8') {
      if (input instanceof Uint8Array) return input;
      if (!this.transform) throw new Error('the session takes 8-bit pixels');
      if (!this.reuse || this.pixels.length < n) this.pixels = new Uint8Array(n);
      const out = this.pixels.subarray(0, n);
      toPixelGrid(input, this.transform, out);
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

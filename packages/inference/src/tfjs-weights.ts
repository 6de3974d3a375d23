// Reads the weights of a TensorFlow.js layers model (model.json weightsManifest + the concatenated shard bytes)
// into float32 arrays and hands them out by layer, without the TensorFlow.js runtime.

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; scale?: number; min?: number; original_dtype?: string };
}

export interface WeightsManifestGroup {
  paths: string[];
  weights: WeightSpec[];
}

export interface NamedWeight {
  name: string;
  shape: number[];
  data: Float32Array;
}

export type WeightBytes = ArrayBuffer | ArrayBufferView | ArrayBuffer[];

const BYTES_PER_ELEMENT: Record<string, number> = { float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2 };

function toBytes(weights: WeightBytes): Uint8Array {
  if (Array.isArray(weights)) {
    const total = weights.reduce((n, b) => n + b.byteLength, 0);
    const out = new Uint8Array(total);
    let offset = 0;
    for (const b of weights) {
      out.set(new Uint8Array(b), offset);
      offset += b.byteLength;
    }
    return out;
  }
  if (ArrayBuffer.isView(weights)) return new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength);
  return new Uint8Array(weights);
}

function float16ToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function decodeWeight(spec: WeightSpec, bytes: Uint8Array, offset: number, size: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset);
  const out = new Float32Array(size);
  const q = spec.quantization;
  if (q) {
    const scale = q.scale ?? 1;
    const min = q.min ?? 0;
    if (q.dtype === 'uint8') for (let i = 0; i < size; i++) out[i] = view.getUint8(i) * scale + min;
    else if (q.dtype === 'uint16') for (let i = 0; i < size; i++) out[i] = view.getUint16(2 * i, true) * scale + min;
    else if (q.dtype === 'float16') for (let i = 0; i < size; i++) out[i] = float16ToFloat32(view.getUint16(2 * i, true));
    else throw new Error(`weight ${spec.name}: unsupported quantization dtype ${q.dtype}`);
    return out;
  }
  if (spec.dtype === 'float32') for (let i = 0; i < size; i++) out[i] = view.getFloat32(4 * i, true);
  else if (spec.dtype === 'int32') for (let i = 0; i < size; i++) out[i] = view.getInt32(4 * i, true);
  else throw new Error(`weight ${spec.name}: unsupported dtype ${spec.dtype}`);
  return out;
}

/** Decodes every weight of the manifest, in manifest order, from the concatenated shard bytes. */
export function readWeights(specs: WeightSpec[], weights: WeightBytes): NamedWeight[] {
  const bytes = toBytes(weights);
  const out: NamedWeight[] = [];
  let offset = 0;
  for (const spec of specs) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const width = BYTES_PER_ELEMENT[spec.quantization?.dtype ?? spec.dtype];
    if (width === undefined) throw new Error(`weight ${spec.name}: unsupported dtype ${spec.quantization?.dtype ?? spec.dtype}`);
    const byteLength = size * width;
    if (offset + byteLength > bytes.byteLength) {
      throw new Error(`weight data too short: ${spec.name} needs bytes ${offset}..${offset + byteLength}, have ${bytes.byteLength}`);
    }
    out.push({ name: spec.name, shape: spec.shape.slice(), data: decodeWeight(spec, bytes, offset, size) });
    offset += byteLength;
  }
  if (offset !== bytes.byteLength) {
    throw new Error(`weight data has ${bytes.byteLength} bytes but the manifest describes ${offset}`);
  }
  return out;
}

/**
 * Hands out weights by layer name and weight name. TF.js and Keras name a weight `<layer>/<weight>`, with the
 * names of enclosing models in front for some exporters (`<model>/<layer>/<weight>`), so a weight is found by
 * exact name first and then by a `/<layer>/<weight>` suffix; each weight is handed out once.
 */
export class WeightStore {
  private readonly byName = new Map<string, NamedWeight>();
  private readonly used = new Set<string>();

  constructor(private readonly weights: NamedWeight[]) {
    for (const w of weights) this.byName.set(w.name, w);
  }

  has(layerName: string, weightName: string): boolean {
    return this.find(layerName, weightName) !== undefined;
  }

  get(layerName: string, weightName: string, expectedShape?: number[]): NamedWeight {
    const w = this.find(layerName, weightName);
    if (!w) throw new Error(`weight ${layerName}/${weightName} is missing from the weights manifest`);
    if (expectedShape && (w.shape.length !== expectedShape.length || w.shape.some((d, i) => d !== expectedShape[i]))) {
      throw new Error(`weight ${w.name} has shape [${w.shape}] but layer ${layerName} expects [${expectedShape}]`);
    }
    this.used.add(w.name);
    return w;
  }

  private find(layerName: string, weightName: string): NamedWeight | undefined {
    const full = `${layerName}/${weightName}`;
    const exact = this.byName.get(full);
    if (exact && !this.used.has(full)) return exact;
    return this.weights.find((w) => !this.used.has(w.name) && w.name.endsWith(`/${full}`)) ?? exact;
  }
}

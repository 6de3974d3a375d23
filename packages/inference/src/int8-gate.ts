// Whether a trained classifier is served in int8: its fp32 ONNX model is quantized (quantize.ts), calibrated on a
// few hundred training images, then both models classify the validation images. int8 is kept only where its
// predictions agree with fp32's on at least `minAgreement` of them and its validation accuracy is at most
// `maxAccuracyDrop` below fp32's; otherwise the decision says why, and fp32 serves.
import { checkManifest, type ClassifierManifest } from './classifier';
import { decodeImage, normalizeInto, pixelTransform, type PixelTransform } from './image';
import { quantizeOnnx, type CalibrationBatch, type QuantizeOptions, type QuantizeReport } from './quantize';
import { createSession, type OrtModel } from './session';

export interface Int8GateOptions extends QuantizeOptions {
  /** Least share of validation images on which int8 and fp32 predict the same class (default 0.995). */
  minAgreement?: number;
  /** Largest drop of validation accuracy, as a fraction (default 0.003: 0.3 points). */
  maxAccuracyDrop?: number;
  /** Images per run (default 16). */
  batch?: number;
}

/** What graft.json and metrics.json record of the int8 decision. */
export interface Int8Decision {
  /** Whether model.int8.onnx is served. */
  used: boolean;
  /** Why int8 is not served (null when it is). */
  reason: string | null;
  minAgreement: number;
  maxAccuracyDrop: number;
  /** Share of validation images on which both predict the same class. */
  agreement: number | null;
  accuracyFp32: number | null;
  accuracyInt8: number | null;
  /** Validation images compared (undecodable ones are left out). */
  images: number;
  quantization: QuantizeReport | null;
}

export interface Int8GateData {
  /** Encoded training images to calibrate on. */
  calibration: readonly Uint8Array[];
  /** Encoded validation images and their label indices. */
  validation: { images: readonly Uint8Array[]; labels: readonly number[] };
}

export const INT8_MIN_AGREEMENT = 0.995;
export const INT8_MAX_ACCURACY_DROP = 0.003;

/** Quantizes `fp32` and decides whether the int8 model may serve; `model` is null where it may not. */
export async function quantizeClassifier(
  fp32: Uint8Array,
  manifest: ClassifierManifest,
  data: Int8GateData,
  opts: Int8GateOptions = {},
): Promise<{ model: Uint8Array | null; decision: Int8Decision }> {
  const m = checkManifest(manifest);
  const minAgreement = opts.minAgreement ?? INT8_MIN_AGREEMENT;
  const maxAccuracyDrop = opts.maxAccuracyDrop ?? INT8_MAX_ACCURACY_DROP;
  const base: Int8Decision = { used: false, reason: null, minAgreement, maxAccuracyDrop, agreement: null, accuracyFp32: null, accuracyInt8: null, images: 0, quantization: null };
  if (data.validation.images.length !== data.validation.labels.length) throw new RangeError('one label per validation image');
  if (data.validation.images.length === 0) return { model: null, decision: { ...base, reason: 'no validation images to check int8 against fp32' } };
  const transform = pixelTransform(m.preprocessing);
  let quantized: { model: Uint8Array; report: QuantizeReport };
  try {
    quantized = await quantizeOnnx(fp32, inputBatches(data.calibration, m.inputSize, transform, opts.batch ?? 16), opts);
  } catch (err) {
    return { model: null, decision: { ...base, reason: `quantization failed: ${(err as Error).message}` } };
  }
  try {
    return await compare(fp32, quantized, m, data.validation, transform, { ...base, quantization: quantized.report }, opts);
  } catch (err) {
    return { model: null, decision: { ...base, quantization: quantized.report, reason: `int8 could not be checked against fp32: ${(err as Error).message}` } };
  }
}

/** Runs both models over the validation images and applies the thresholds. */
async function compare(
  fp32: Uint8Array,
  quantized: { model: Uint8Array; report: QuantizeReport },
  m: ClassifierManifest,
  validation: Int8GateData['validation'],
  transform: PixelTransform,
  base: Int8Decision,
  opts: Int8GateOptions,
): Promise<{ model: Uint8Array | null; decision: Int8Decision }> {
  const { minAgreement, maxAccuracyDrop } = base;
  const threads = opts.threads ?? 1;
  const [s32, s8] = await Promise.all([createSession(fp32, { threads }), createSession(quantized.model, { threads })]);
  try {
    const width = classOutputs(m, s32);
    let images = 0;
    let agree = 0;
    let right32 = 0;
    let right8 = 0;
    const labels = validation.labels;
    for await (const b of inputBatches(validation.images, m.inputSize, transform, opts.batch ?? 16)) {
      const [o32, o8] = [await s32.run(b.input, b.batch), await s8.run(b.input, b.batch)];
      const stride = o32.length / b.batch;
      for (let i = 0; i < b.batch; i++) {
        const p32 = predicted(o32, i * stride, width);
        const p8 = predicted(o8, i * stride, width);
        const label = labels[b.indices[i]!];
        images++;
        agree += +(p32 === p8);
        right32 += +(p32 === label);
        right8 += +(p8 === label);
      }
    }
    if (images === 0) return { model: null, decision: { ...base, reason: 'no validation image could be decoded' } };
    const decision: Int8Decision = {
      ...base,
      images,
      agreement: agree / images,
      accuracyFp32: right32 / images,
      accuracyInt8: right8 / images,
    };
    const drop = decision.accuracyFp32! - decision.accuracyInt8!;
    // A tolerance for float rounding of the shares (1 image in 10^9).
    if (decision.agreement! + 1e-9 < minAgreement) {
      decision.reason = `int8 agrees with fp32 on ${pct(decision.agreement!)} of ${images} validation images; at least ${pct(minAgreement)} needed`;
    } else if (drop > maxAccuracyDrop + 1e-9) {
      decision.reason = `int8 validation accuracy ${pct(decision.accuracyInt8!)} is ${(drop * 100).toFixed(2)} points below fp32's ${pct(decision.accuracyFp32!)}; at most ${(maxAccuracyDrop * 100).toFixed(2)} allowed`;
    }
    decision.used = decision.reason === null;
    return { model: decision.used ? quantized.model : null, decision };
  } finally {
    await Promise.all([s32.dispose(), s8.dispose()]);
  }
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** How many leading output values are the class outputs (the rest are out-of-distribution features). */
function classOutputs(m: ClassifierManifest, s: OrtModel): number {
  const total = s.outputShape[0]!;
  const extra = m.outOfDistribution ? m.outOfDistribution.featureSize + m.outOfDistribution.bankSize : 0;
  const n = m.labels.length;
  for (const w of [n, n === 2 ? 1 : -1]) if (w > 0 && (total === w || total === w + extra)) return w;
  throw new Error(`the ONNX model gives [${s.outputShape}] per image, which does not fit ${n} labels`);
}

/** The predicted class of one output row: argmax, or p > 0.5 for one sigmoid unit. */
function predicted(out: Float32Array, at: number, width: number): number {
  if (width === 1) return out[at]! > 0.5 ? 1 : 0;
  let best = 0;
  for (let k = 1; k < width; k++) if (out[at + k]! > out[at + best]!) best = k;
  return best;
}

/** Decoded, normalised batches of images; images that do not decode are skipped (`indices` says which came). */
async function* inputBatches(
  images: readonly Uint8Array[],
  size: number,
  transform: PixelTransform,
  batch: number,
): AsyncGenerator<CalibrationBatch & { indices: number[] }> {
  const per = size * size * 3;
  for (let start = 0; start < images.length; start += batch) {
    const chunk = images.slice(start, start + batch);
    const decoded = await Promise.allSettled(chunk.map((b) => decodeImage(b, size)));
    const indices: number[] = [];
    const pixels: Uint8Array[] = [];
    decoded.forEach((d, i) => {
      if (d.status === 'fulfilled') {
        indices.push(start + i);
        pixels.push(d.value);
      }
    });
    if (pixels.length === 0) continue;
    const input = new Float32Array(pixels.length * per);
    pixels.forEach((p, i) => normalizeInto(p, transform, input, i * per));
    yield { input, batch: pixels.length, indices };
  }
}

// Whether a trained classifier is served in int8: its fp32 ONNX model is quantized (quantize.ts), calibrated on a
// few dozen training images, then both models classify the validation images. int8 is kept only where its
// predictions agree with fp32's on at least `minAgreement` of them and its validation accuracy is at most
// `maxAccuracyDrop` below fp32's; otherwise the decision says why, and fp32 serves.
//
// Where int8 starts is tried from the fastest down (INT8_STRIDES): every convolution in int8 first, then only those
// on feature maps at least 4, 8, then 16 times narrower than the input. Which one keeps the predictions depends on the
// model and the CPU: on x86 CPUs with VNNI a fine-tuned MobileNet at 288 px keeps 99.7% agreement with every
// convolution in int8 (Dogs vs Cats) where flowers needs its early blocks in fp32 (from input / 4, the three
// convolutions on 144 px maps in fp32, it kept 99.54% and ran at 262-275 images/s, against 216-239 from input / 8);
// without VNNI the early blocks' rounding flips far more. A rung stops as soon as more images disagree than the
// threshold allows, so the ones that fail cost little.
//
// fp32's predictions may come with the images (training's evaluation of the same model.onnx): the first batch is
// then run in fp32 to confirm they are this model's, and only int8 runs over the rest.
import { checkManifest, type ClassifierManifest } from './classifier';
import { normalizedBatches, pixelTransform, resizeKernelOf, type NormalizedBatch, type PixelTransform, type ResizeKernel } from './image';
import { quantizeOnnx, type Calibrated, type QuantizeOptions, type QuantizeReport } from './quantize';
import { createSession, type OrtModel } from './session';

/**
 * The check's quantization is quantizeOnnx's (its options below): a served classifier's last convolution runs as an
 * integer kernel too and its output is rounded to 8 bits before the head pools it; the check decides whether the
 * predictions keep.
 */
export interface Int8GateOptions extends QuantizeOptions {
  /** Least share of validation images on which int8 and fp32 predict the same class (default 0.995). */
  minAgreement?: number;
  /** Largest drop of validation accuracy, as a fraction (default 0.003: 0.3 points). */
  maxAccuracyDrop?: number;
  /** Images per run (default 16). */
  batch?: number;
  /** Where int8 may start, tried in order until one passes (default INT8_STRIDES; `int8Stride` tries that one only). */
  int8Strides?: readonly number[];
}

/** Where the check's time went, in seconds. */
export interface Int8CheckSeconds {
  /** Waiting for the calibration and validation images to decode (they decode a batch ahead of their use). */
  decode: number;
  /** Calibrating, rewriting and bias-correcting the model (quantizeOnnx, decoding left out). */
  quantize: number;
  /** Running fp32 over the validation images (only the first batch where fp32's predictions were given). */
  fp32: number;
  int8: number;
  total: number;
}

/** One quantization tried: where int8 started, and how it fared. */
export interface Int8Attempt {
  int8Stride: number;
  /** Share of the compared images on which int8 and fp32 predict the same class (null: not compared). */
  agreement: number | null;
  /** Validation images compared before the attempt was decided. */
  images: number;
  /** Why it was not kept (null: kept). */
  reason: string | null;
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
  /** The last quantization tried: the kept one where int8 is used. */
  quantization: QuantizeReport | null;
  /** Where the last quantization tried starts int8 (quantize.ts int8Stride). */
  int8Stride?: number | null;
  /** Every quantization tried, in order. */
  attempts?: Int8Attempt[];
  /** Whether fp32's predictions were the ones given with the images (false: fp32 ran over all of them). */
  fp32Given?: boolean;
  seconds?: Int8CheckSeconds;
}

export interface Int8GateData {
  /** Encoded training images to calibrate on. */
  calibration: readonly Uint8Array[];
  /**
   * Encoded validation images, their label indices and, where known, the class model.onnx predicts for each
   * (training's evaluation): fp32 then runs on the first batch only, to check them.
   */
  validation: { images: readonly Uint8Array[]; labels: readonly number[]; fp32?: readonly number[] };
}

/** What the check passes to quantizeOnnx: `opts`, with `quantizeOutputs` true unless said otherwise (Int8GateOptions). */
export function checkQuantization(opts: Int8GateOptions): Int8GateOptions {
  return { ...opts, quantizeOutputs: opts.quantizeOutputs ?? true };
}

/** Where int8 may start, tried in this order: every convolution, then from input / 4, / 8, / 16. */
export const INT8_STRIDES: readonly number[] = [1, 4, 8, 16];

export const INT8_MIN_AGREEMENT = 0.995;
export const INT8_MAX_ACCURACY_DROP = 0.003;

/** Quantizes `fp32` and decides whether the int8 model may serve; `model` is null where it may not. */
export async function quantizeClassifier(
  fp32: Uint8Array,
  manifest: ClassifierManifest,
  data: Int8GateData,
  opts: Int8GateOptions = {},
): Promise<{ model: Uint8Array | null; decision: Int8Decision }> {
  const started = performance.now();
  const m = checkManifest(manifest);
  const minAgreement = opts.minAgreement ?? INT8_MIN_AGREEMENT;
  const maxAccuracyDrop = opts.maxAccuracyDrop ?? INT8_MAX_ACCURACY_DROP;
  const base: Int8Decision = { used: false, reason: null, minAgreement, maxAccuracyDrop, agreement: null, accuracyFp32: null, accuracyInt8: null, images: 0, quantization: null };
  const { validation } = data;
  if (validation.images.length !== validation.labels.length) throw new RangeError('one label per validation image');
  if (validation.fp32 && validation.fp32.length !== validation.images.length) throw new RangeError('one fp32 prediction per validation image');
  if (validation.images.length === 0) return { model: null, decision: { ...base, reason: 'no validation images to check int8 against fp32' } };
  const strides = opts.int8Stride !== undefined ? [opts.int8Stride] : (opts.int8Strides ?? INT8_STRIDES);
  if (strides.length === 0) throw new RangeError('int8Strides must name at least one stride');
  const clock = new CheckClock();
  const fp32Classes = new Fp32Classes(fp32, validation.fp32, opts.threads ?? 1, clock);
  const check: Check = { manifest: m, transform: pixelTransform(m.preprocessing), kernel: resizeKernelOf(m.preprocessing), clock, fp32Classes };
  const attempts: Int8Attempt[] = [];
  let last: { model: Uint8Array | null; decision: Int8Decision } | null = null;
  try {
    for (const int8Stride of strides) {
      last = await attempt(fp32, data, { ...base, int8Stride }, { ...opts, int8Stride }, check);
      attempts.push({ int8Stride, agreement: last.decision.agreement, images: last.decision.images, reason: last.decision.reason });
      if (last.decision.used) break;
    }
  } finally {
    await fp32Classes.dispose();
  }
  last!.decision.attempts = attempts;
  last!.decision.seconds = { ...clock.seconds, total: clock.since(started) };
  return last!;
}

/** What every rung of one check shares. */
interface Check {
  manifest: ClassifierManifest;
  transform: PixelTransform;
  kernel: ResizeKernel;
  clock: CheckClock;
  fp32Classes: Fp32Classes;
  /** The ranges the first rung measured: later rungs quantize a subset of its activations and reuse them. */
  calibrated?: Calibrated;
}

/** One rung: quantize with `opts.int8Stride`, then compare with fp32 on the validation images. */
async function attempt(
  fp32: Uint8Array,
  data: Int8GateData,
  base: Int8Decision,
  opts: Int8GateOptions,
  check: Check,
): Promise<{ model: Uint8Array | null; decision: Int8Decision }> {
  const { clock } = check;
  let quantized: { model: Uint8Array; report: QuantizeReport; calibrated: Calibrated };
  try {
    const t = performance.now();
    const decodeBefore = clock.seconds.decode;
    const calibration = clock.decoding(inputBatches(data.calibration, check, opts.batch ?? 16));
    quantized = await quantizeOnnx(fp32, calibration, { inputPixels: check.transform, ...opts, calibrated: check.calibrated });
    check.calibrated = quantized.calibrated;
    clock.add('quantize', clock.since(t) - (clock.seconds.decode - decodeBefore));
  } catch (err) {
    return { model: null, decision: { ...base, reason: `quantization failed: ${(err as Error).message}` } };
  }
  try {
    return await compare(quantized, data.validation, { ...base, quantization: quantized.report }, opts, check);
  } catch (err) {
    return { model: null, decision: { ...base, quantization: quantized.report, reason: `int8 could not be checked against fp32: ${(err as Error).message}` } };
  }
}

/** Seconds spent per part of the check. */
class CheckClock {
  readonly seconds = { decode: 0, quantize: 0, fp32: 0, int8: 0 };
  since(t: number): number {
    return (performance.now() - t) / 1000;
  }
  add(part: keyof CheckClock['seconds'], s: number): void {
    this.seconds[part] += s;
  }
  async time<T>(part: keyof CheckClock['seconds'], run: () => Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await run();
    } finally {
      this.add(part, this.since(t));
    }
  }
  /**
   * `batches`, the next one decoded while the caller runs the one it has (libuv's pool decodes as ONNX Runtime
   * computes); the time spent waiting for them is counted as decoding.
   */
  async *decoding<T>(batches: AsyncGenerator<T>): AsyncGenerator<T> {
    let next = batches.next();
    try {
      for (;;) {
        const current = await this.time('decode', () => next);
        if (current.done) return;
        next = batches.next();
        yield current.value;
      }
    } finally {
      // A caller that stops early: the batch being decoded ahead finishes, then the batches are closed.
      void next.then(() => batches.return(undefined)).catch(() => {});
    }
  }
}

/**
 * fp32's class of each validation image: the given ones once the first batch confirms them, else computed (on the
 * batches that need them) and kept for the later attempts.
 */
class Fp32Classes {
  private session: Promise<OrtModel> | null = null;
  private readonly computed = new Map<number, number>();
  private checked = false;
  /** Whether the given classes are the ones used (false once the first batch contradicts them). */
  given: boolean;

  constructor(
    private readonly fp32: Uint8Array,
    private readonly list: readonly number[] | undefined,
    private readonly threads: number,
    private readonly clock: CheckClock,
  ) {
    this.given = !!list;
  }

  private known(index: number): number | undefined {
    return this.given && this.checked ? this.list![index] : this.computed.get(index);
  }

  /** The classes of one batch's images; `width` is the number of class outputs per row. */
  async of(b: NormalizedBatch, width: number): Promise<number[]> {
    const known = b.indices.map((i) => this.known(i));
    if (known.every((c) => c !== undefined)) return known as number[];
    const s32 = await (this.session ??= createSession(this.fp32, { threads: this.threads }));
    const out = await this.clock.time('fp32', () => s32.run(b.input, b.batch));
    const stride = out.length / b.batch;
    const classes = b.indices.map((_, k) => predicted(out, k * stride, width));
    b.indices.forEach((index, k) => this.computed.set(index, classes[k]!));
    if (this.given && !this.checked) {
      this.checked = true;
      if (b.indices.some((index, k) => classes[k] !== this.list![index])) this.given = false;
    }
    return classes;
  }

  async dispose(): Promise<void> {
    const s = await this.session?.catch(() => null);
    await s?.dispose();
  }
}

/**
 * fp32's and int8's predicted classes on the validation images that decode, until more than `allowed` of them
 * disagree (`stopped`: the rest is not looked at).
 */
async function predictions(
  s8: OrtModel,
  width: number,
  batches: AsyncGenerator<NormalizedBatch>,
  { clock, fp32Classes }: Check,
  allowed: number,
): Promise<{ indices: number[]; p32: number[]; p8: number[]; disagreements: number; stopped: boolean }> {
  const out = { indices: [] as number[], p32: [] as number[], p8: [] as number[], disagreements: 0, stopped: false };
  for await (const b of batches) {
    const o8 = await clock.time('int8', () => s8.run(b.input, b.batch));
    const p32 = await fp32Classes.of(b, width);
    const stride = o8.length / b.batch;
    b.indices.forEach((index, i) => {
      const p8 = predicted(o8, i * stride, width);
      out.indices.push(index);
      out.p32.push(p32[i]!);
      out.p8.push(p8);
      if (p8 !== p32[i]) out.disagreements++;
    });
    if (out.disagreements > allowed) {
      out.stopped = true;
      break;
    }
  }
  return out;
}

/** Runs the int8 model over the validation images, beside fp32's classes, and applies the thresholds. */
async function compare(
  quantized: { model: Uint8Array; report: QuantizeReport },
  validation: Int8GateData['validation'],
  base: Int8Decision,
  opts: Int8GateOptions,
  check: Check,
): Promise<{ model: Uint8Array | null; decision: Int8Decision }> {
  const { manifest: m, clock, fp32Classes } = check;
  const { minAgreement, maxAccuracyDrop } = base;
  const s8 = await createSession(quantized.model, { threads: opts.threads ?? 1 });
  try {
    const width = classOutputs(m, s8);
    // More disagreements than this among all the images fail the check whatever the rest do.
    const total = validation.images.length;
    const allowed = Math.floor((1 - minAgreement) * total + 1e-9);
    const batches = clock.decoding(inputBatches(validation.images, check, opts.batch ?? 16));
    const seen = await predictions(s8, width, batches, check, allowed);
    const images = seen.indices.length;
    if (images === 0) return { model: null, decision: { ...base, reason: 'no validation image could be decoded' } };
    const labels = seen.indices.map((i) => validation.labels[i]);
    const share = (hits: (i: number) => boolean) => seen.indices.filter((_, i) => hits(i)).length / images;
    const decision: Int8Decision = {
      ...base,
      images,
      agreement: share((i) => seen.p32[i] === seen.p8[i]),
      accuracyFp32: share((i) => seen.p32[i] === labels[i]),
      accuracyInt8: share((i) => seen.p8[i] === labels[i]),
      fp32Given: fp32Classes.given,
    };
    decision.reason = seen.stopped
      ? `int8 disagrees with fp32 on ${seen.disagreements} of the first ${images} validation images; at most ${allowed} of ${total} may for ${pct(minAgreement)} agreement`
      : verdict(decision, minAgreement, maxAccuracyDrop);
    decision.used = decision.reason === null;
    return { model: decision.used ? quantized.model : null, decision };
  } finally {
    await s8.dispose();
  }
}

/** Why int8 may not serve, or null where it may. */
function verdict(d: Int8Decision, minAgreement: number, maxAccuracyDrop: number): string | null {
  const drop = d.accuracyFp32! - d.accuracyInt8!;
  // A tolerance for float rounding of the shares (1 image in 10^9).
  if (d.agreement! + 1e-9 < minAgreement) {
    return `int8 agrees with fp32 on ${pct(d.agreement!)} of ${d.images} validation images; at least ${pct(minAgreement)} needed`;
  }
  if (drop > maxAccuracyDrop + 1e-9) {
    return `int8 validation accuracy ${pct(d.accuracyInt8!)} is ${(drop * 100).toFixed(2)} points below fp32's ${pct(d.accuracyFp32!)}; at most ${(maxAccuracyDrop * 100).toFixed(2)} allowed`;
  }
  return null;
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

/** The images decoded and normalised as the check's model takes them, `batch` at a time. */
const inputBatches = (images: readonly Uint8Array[], check: Pick<Check, 'manifest' | 'transform' | 'kernel'>, batch: number) =>
  normalizedBatches(images, { size: check.manifest.inputSize, transform: check.transform, kernel: check.kernel }, batch);

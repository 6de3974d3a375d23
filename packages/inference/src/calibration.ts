// Calibration of class probabilities by temperature scaling, and how to measure it.
//
// A classifier's outputs are probabilities (softmax, or one sigmoid unit read as [1 - p, p]); their logarithms are
// the logits up to a constant, which softmax ignores. Calibrated probabilities are softmax(log(p) / T): T > 1
// softens an overconfident model, T < 1 sharpens an underconfident one, T = 1 changes nothing, and the most
// probable class never changes. T is fitted on held-out images (the validation split) by minimising their
// negative log-likelihood. The expected calibration error (ECE) is, over equal-width confidence bins, the
// share-weighted gap between each bin's accuracy and its mean confidence (the top class's probability).

/** Number of confidence bins of the expected calibration error and the reliability diagram. */
import type { Calibration, ReliabilityBin } from '@graft/contract';
export const CALIBRATION_BINS = 15;

const EPSILON = 1e-7;
/** The range T is searched in. */
const T_MIN = 0.05;
const T_MAX = 20;

/** `p` calibrated by temperature `t` (a new array; `p` itself when t is 1). */
export function applyTemperature(p: Float32Array, t: number): Float32Array {
  if (t === 1) return p;
  const out = new Float32Array(p.length);
  let max = -Infinity;
  for (let i = 0; i < p.length; i++) {
    out[i] = Math.log(Math.max(EPSILON, p[i]!)) / t;
    if (out[i]! > max) max = out[i]!;
  }
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    out[i] = Math.exp(out[i]! - max);
    sum += out[i]!;
  }
  for (let i = 0; i < p.length; i++) out[i] = out[i]! / sum;
  return out;
}

/** Mean negative log-likelihood of the true classes under temperature t. */
function meanNll(logs: Float64Array[], truth: number[], t: number): number {
  let total = 0;
  logs.forEach((l, i) => {
    let max = -Infinity;
    for (let c = 0; c < l.length; c++) max = Math.max(max, l[c]! / t);
    let sum = 0;
    for (let c = 0; c < l.length; c++) sum += Math.exp(l[c]! / t - max);
    total += -(l[truth[i]!]! / t - max - Math.log(sum));
  });
  return total / logs.length;
}

/**
 * The temperature that minimises the negative log-likelihood of `truth` (class indices) under the calibrated
 * `probabilities`: a golden-section search on log T over [0.05, 20] (the likelihood is unimodal in 1/T). 1 when
 * there are no samples.
 */
export function fitTemperature(probabilities: ArrayLike<number>[], truth: number[]): number {
  if (!probabilities.length) return 1;
  const logs = probabilities.map((p) => Float64Array.from(p as ArrayLike<number>, (v) => Math.log(Math.max(EPSILON, v))));
  const f = (logT: number) => meanNll(logs, truth, Math.exp(logT));
  const phi = (Math.sqrt(5) - 1) / 2;
  let a = Math.log(T_MIN);
  let b = Math.log(T_MAX);
  let c = b - phi * (b - a);
  let d = a + phi * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let i = 0; i < 60 && b - a > 1e-5; i++) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - phi * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + phi * (b - a);
      fd = f(d);
    }
  }
  const t = Math.exp((a + b) / 2);
  // A fit no better than leaving the probabilities alone keeps them as they are.
  return f(Math.log(t)) < f(0) ? t : 1;
}

export type { ReliabilityBin };

/** The reliability diagram of probabilities against true class indices, in CALIBRATION_BINS equal-width bins. */
export function reliabilityBins(probabilities: ArrayLike<number>[], truth: number[], bins = CALIBRATION_BINS): ReliabilityBin[] {
  const count = new Array<number>(bins).fill(0);
  const conf = new Array<number>(bins).fill(0);
  const hits = new Array<number>(bins).fill(0);
  probabilities.forEach((p, i) => {
    let best = 0;
    for (let c = 1; c < p.length; c++) if (p[c]! > p[best]!) best = c;
    const top = p[best]!;
    const b = Math.min(bins - 1, Math.floor(top * bins));
    count[b]! += 1;
    conf[b]! += top;
    if (best === truth[i]) hits[b]! += 1;
  });
  return count.map((n, b) => ({
    from: b / bins,
    to: (b + 1) / bins,
    count: n,
    confidence: n ? conf[b]! / n : null,
    accuracy: n ? hits[b]! / n : null,
  }));
}

/** The expected calibration error of a reliability diagram (NaN when it holds no images). */
export function expectedCalibrationError(bins: ReliabilityBin[]): number {
  const total = bins.reduce((s, b) => s + b.count, 0);
  if (!total) return NaN;
  return bins.reduce((s, b) => (b.count ? s + (b.count / total) * Math.abs(b.accuracy! - b.confidence!) : s), 0);
}

/** Calibration of a set of predictions before and after a temperature: what the metrics report. */
export type CalibrationReport = Calibration;

export function calibrationReport(probabilities: Float32Array[], truth: number[], temperature: number): CalibrationReport {
  const calibrated = probabilities.map((p) => applyTemperature(p, temperature));
  const reliability = reliabilityBins(probabilities, truth);
  const calibratedReliability = reliabilityBins(calibrated, truth);
  const loss = truth.length ? truth.reduce((s, t, i) => s - Math.log(Math.max(EPSILON, calibrated[i]![t]!)), 0) / truth.length : NaN;
  return {
    temperature,
    ece: expectedCalibrationError(reliability),
    calibratedEce: expectedCalibrationError(calibratedReliability),
    calibratedLoss: loss,
    reliability,
    calibratedReliability,
  };
}

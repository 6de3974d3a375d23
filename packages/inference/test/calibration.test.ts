// Temperature scaling and the expected calibration error, on probabilities whose calibration is known.
import { describe, expect, it } from 'vitest';
import { applyTemperature, calibrationReport, expectedCalibrationError, fitTemperature, reliabilityBins } from '../src/calibration';

/** A deterministic stream of numbers in [0, 1). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** n samples of k classes whose top class has probability `confidence` and is right with probability `accuracy`. */
function samples(n: number, k: number, confidence: number, accuracy: number, seed: number) {
  const rnd = random(seed);
  const probabilities: Float32Array[] = [];
  const truth: number[] = [];
  for (let i = 0; i < n; i++) {
    const top = Math.floor(rnd() * k);
    const p = new Float32Array(k).fill((1 - confidence) / (k - 1));
    p[top] = confidence;
    probabilities.push(p);
    truth.push(rnd() < accuracy ? top : (top + 1 + Math.floor(rnd() * (k - 1))) % k);
  }
  return { probabilities, truth };
}

describe('applyTemperature', () => {
  it('leaves probabilities alone at 1, softens above 1, sharpens below, and keeps the order of the classes', () => {
    const p = Float32Array.of(0.7, 0.2, 0.1);
    expect(applyTemperature(p, 1)).toBe(p);
    const soft = applyTemperature(p, 2);
    const sharp = applyTemperature(p, 0.5);
    for (const q of [soft, sharp]) expect(q.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    expect(soft[0]!).toBeLessThan(0.7);
    expect(sharp[0]!).toBeGreaterThan(0.7);
    expect(soft[0]! > soft[1]! && soft[1]! > soft[2]!).toBe(true);
    // softmax(log p / 2) = sqrt(p) normalised.
    const roots = [0.7, 0.2, 0.1].map(Math.sqrt);
    const sum = roots.reduce((a, b) => a + b, 0);
    roots.forEach((r, i) => expect(soft[i]!).toBeCloseTo(r / sum, 6));
  });

  it('on two classes is the sigmoid of the logit divided by T', () => {
    const q = applyTemperature(Float32Array.of(0.1, 0.9), 3);
    const logit = Math.log(0.9 / 0.1) / 3;
    expect(q[1]!).toBeCloseTo(1 / (1 + Math.exp(-logit)), 6);
  });
});

describe('expected calibration error', () => {
  it('is the count-weighted gap between accuracy and confidence over 15 bins', () => {
    // Four samples at 0.9 (three right) and two at 0.6 (both wrong).
    const probabilities = [0.9, 0.9, 0.9, 0.9, 0.6, 0.6].map((c) => Float32Array.of(c, 1 - c));
    const truth = [0, 0, 0, 1, 1, 1];
    const bins = reliabilityBins(probabilities, truth);
    expect(bins).toHaveLength(15);
    const filled = bins.filter((b) => b.count);
    expect(filled.map((b) => b.count)).toEqual([2, 4]);
    expect(filled[1]!.accuracy).toBeCloseTo(0.75, 9);
    expect(filled[1]!.confidence).toBeCloseTo(0.9, 6);
    expect(expectedCalibrationError(bins)).toBeCloseTo((4 / 6) * 0.15 + (2 / 6) * 0.6, 6);
    expect(expectedCalibrationError(reliabilityBins([], []))).toBeNaN();
  });
});

describe('fitTemperature', () => {
  it('softens an overconfident model and lowers its calibration error', () => {
    const { probabilities, truth } = samples(2000, 3, 0.98, 0.7, 1);
    const t = fitTemperature(probabilities, truth);
    expect(t).toBeGreaterThan(1.5);
    const report = calibrationReport(probabilities, truth, t);
    expect(report.ece).toBeGreaterThan(0.25);
    expect(report.calibratedEce).toBeLessThan(0.05);
  });

  it('sharpens an underconfident model', () => {
    const { probabilities, truth } = samples(2000, 2, 0.6, 0.95, 2);
    const t = fitTemperature(probabilities, truth);
    expect(t).toBeLessThan(0.5);
    const report = calibrationReport(probabilities, truth, t);
    expect(report.calibratedEce).toBeLessThan(report.ece / 3);
  });

  it('keeps a calibrated model near 1, and is 1 without samples', () => {
    const { probabilities, truth } = samples(4000, 2, 0.8, 0.8, 3);
    expect(fitTemperature(probabilities, truth)).toBeGreaterThan(0.85);
    expect(fitTemperature(probabilities, truth)).toBeLessThan(1.15);
    expect(fitTemperature([], [])).toBe(1);
  });
});

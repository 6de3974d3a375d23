// Classification metrics from predicted probabilities: loss, accuracy, confusion matrix (rows = true label,
// columns = predicted label), per-class precision, recall, F1 and support, and calibration (expected calibration
// error before and after the model's temperature, with their reliability diagrams).
import type { ClassMetrics, DetailedMetrics } from '@graft/contract';

export type { ClassMetrics };
/** A split's evaluation, confusion matrix and per-class numbers included. */
export type TestMetrics = DetailedMetrics;

const EPSILON = 1e-7;

/** The index of the largest of `values` (the first where several are), as a prediction's class. */
export function argMax(values: ArrayLike<number>): number {
  let best = 0;
  for (let c = 1; c < values.length; c++) if (values[c]! > values[best]!) best = c;
  return best;
}

/**
 * Metrics of probabilities (one row of `labels.length` class probabilities per sample) against true class
 * indices.
 */
export function classificationMetrics(probabilities: Float32Array[] | number[][], truth: number[], labels: string[]): TestMetrics {
  const k = labels.length;
  const cm = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let lossSum = 0;
  let correct = 0;
  truth.forEach((t, i) => {
    const p = probabilities[i]!;
    const best = argMax(p);
    cm[t]![best]! += 1;
    if (best === t) correct++;
    lossSum += -Math.log(Math.min(1 - EPSILON, Math.max(EPSILON, p[t]!)));
  });
  const n = truth.length;
  const perClass: Record<string, ClassMetrics> = {};
  labels.forEach((label, c) => {
    const tp = cm[c]![c]!;
    const support = cm[c]!.reduce((a, b) => a + b, 0);
    const predicted = cm.reduce((a, row) => a + row[c]!, 0);
    const precision = predicted ? tp / predicted : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    perClass[label] = { precision, recall, f1, support };
  });
  return { loss: n ? lossSum / n : NaN, accuracy: n ? correct / n : NaN, confusionMatrix: cm, labels: [...labels], perClass };
}

/** Turns the model's output rows into per-class probabilities (a single sigmoid unit p becomes [1 - p, p]). */
export function toClassProbabilities(output: Float32Array, rows: number, numClasses: number): Float32Array[] {
  const width = output.length / rows;
  const result: Float32Array[] = [];
  for (let i = 0; i < rows; i++) {
    if (width === 1 && numClasses === 2) {
      const p = output[i]!;
      result.push(Float32Array.of(1 - p, p));
    } else {
      result.push(output.slice(i * width, (i + 1) * width));
    }
  }
  return result;
}

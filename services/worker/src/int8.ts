// The int8 model of a trained classifier: model.onnx quantized, calibrated on training images, and kept as
// model.int8.onnx only where it agrees with fp32 on the validation images (@graft/inference quantizeClassifier).
// The decision, kept or not and why, goes into graft.json and metrics.json as `int8`.
import { availableParallelism } from 'node:os';
import { quantizeClassifier, type ClassifierManifest, type Int8Decision } from '@graft/inference';
import type { GraftConfig } from '@graft/config';
import { mapConcurrent, spread } from '@graft/vision';

const READS_AT_ONCE = 16;

interface Sample {
  key: string;
  label: number;
}

/** A validation image with the class model.onnx predicted for it in training's evaluation, where known. */
interface Evaluated extends Sample {
  predicted?: number;
}

/**
 * The images the int8 check reads: it compares int8 with fp32 on the validation images training evaluated, which
 * are carved out of train where the dataset has no validation split, and calibrates on the training images left.
 * fp32's predictions of the evaluated images come along, so that the check need not compute them again: training
 * runs validation images through the fp32 frozen base even where the training images went through int8, so the
 * evaluation's classes are model.onnx's (the check confirms them on its first batch; after a refit,
 * exportedValidationClasses, where the predictions are the chosen model's).
 */
export function int8Splits(
  splits: { train: Sample[]; validation: Sample[] },
  result: { predictions: { validation: readonly Sample[] | null }; exportedValidationClasses: readonly number[] | null },
): { train: Sample[]; validation: Evaluated[] } {
  const classes = result.exportedValidationClasses;
  const validation = result.predictions.validation?.map(({ key, label }, i) => ({ key, label, predicted: classes?.[i] })) ?? splits.validation;
  const held = new Set(validation.map((s) => s.key));
  return { train: splits.train.filter((s) => !held.has(s.key)), validation };
}

export async function int8Model(
  fp32: Uint8Array,
  graftJson: Uint8Array,
  splits: { train: Sample[]; validation: Evaluated[] },
  readImage: (key: string) => Promise<Uint8Array>,
  settings: GraftConfig['int8'],
): Promise<{ model: Uint8Array | null; decision: Int8Decision }> {
  const manifest = JSON.parse(Buffer.from(graftJson).toString('utf8')) as ClassifierManifest;
  const calibrationKeys = spread(splits.train, settings.calibrationImages).map((s) => s.key);
  const validation = spread(splits.validation, settings.validationImages);
  // A bounded number of reads at once: a dataset's validation split can be thousands of objects.
  const calibration = await mapConcurrent(calibrationKeys, READS_AT_ONCE, (key) => readImage(key));
  const images = await mapConcurrent(validation, READS_AT_ONCE, (s) => readImage(s.key));
  // Training is over: the job has the cores to itself.
  const opts = { method: 'minmax' as const, threads: availableParallelism() };
  const predicted = validation.map((s) => s.predicted);
  const fp32Predicted = predicted.every((p) => p !== undefined) ? (predicted as number[]) : undefined;
  return quantizeClassifier(fp32, manifest, { calibration, validation: { images, labels: validation.map((s) => s.label), fp32: fp32Predicted } }, opts);
}

// The trained classifier as files: one TensorFlow.js layers model (backbone + head, from a preprocessed
// size x size x 3 image to class probabilities) as `model.json` + `weights.bin`, and `graft.json` describing how
// to use it (labels, input size, preprocessing, output activation).
import { createRequire } from 'node:module';
import type { OodManifest } from '@graft/inference';
import * as tf from '@tensorflow/tfjs';
import type { OutputActivation } from './head';
import { saveLayersModelToFiles } from './model-files';
import type { Preprocessing } from './preprocess';

export const MANIFEST_FILE = 'graft.json';

export interface GraftManifest {
  format: 'graft-classifier';
  version: 1;
  labels: string[];
  inputSize: number;
  /** Backbone name, or null for a model trained from scratch. */
  backbone: string | null;
  method: 'scratch' | 'feature_extraction' | 'fine_tuning';
  /**
   * From decoded RGB pixels (0..255) to the model input: resize to inputSize x inputSize ignoring the aspect
   * ratio ('stretch'), reorder channels, then (pixel - mean) / std per channel.
   */
  preprocessing: Preprocessing & { resize: 'stretch'; colorSpace: 'srgb'; exifRotate: true };
  /** 'sigmoid': one output p = probability of labels[1]; 'softmax': one probability per label. */
  outputActivation: OutputActivation;
  /**
   * Temperature scaling fitted on the validation split after training: served probabilities are
   * softmax(log(p) / temperature). Null where there were no validation images.
   */
  calibration: { temperature: number; fittedOn: 'validation'; images: number } | null;
  /** How to score images of none of the classes (feature bank and threshold); null where none was made. */
  outOfDistribution: OodManifest | null;
  modelFile: 'model.json';
  createdWith: { graftVision: string; tfjs: string; backend: string };
  createdAt: string;
}

const require = createRequire(import.meta.url);
export const VISION_VERSION: string = (require('../package.json') as { version: string }).version;

export function makeManifest(args: {
  labels: string[];
  inputSize: number;
  backbone: string | null;
  method: GraftManifest['method'];
  preprocessing: Preprocessing;
  outputActivation: OutputActivation;
  calibration?: GraftManifest['calibration'];
  outOfDistribution?: OodManifest | null;
}): GraftManifest {
  return {
    format: 'graft-classifier',
    version: 1,
    labels: [...args.labels],
    inputSize: args.inputSize,
    backbone: args.backbone,
    method: args.method,
    preprocessing: { ...args.preprocessing, resize: 'stretch', colorSpace: 'srgb', exifRotate: true },
    outputActivation: args.outputActivation,
    calibration: args.calibration ?? null,
    outOfDistribution: args.outOfDistribution ?? null,
    modelFile: 'model.json',
    createdWith: { graftVision: VISION_VERSION, tfjs: tf.version.tfjs, backend: tf.getBackend() },
    createdAt: new Date().toISOString(),
  };
}

/** `model.json`, `weights.bin` and `graft.json` of a classifier. */
export async function exportClassifier(model: tf.LayersModel, manifest: GraftManifest): Promise<Record<string, Uint8Array>> {
  const files = await saveLayersModelToFiles(model, { modelJson: 'model.json', weights: 'weights.bin' });
  files[MANIFEST_FILE] = new Uint8Array(Buffer.from(JSON.stringify(manifest, null, 2)));
  return files;
}

// A trained classifier loaded from its files (`graft.json`, `model.json`, weights), answering top-k predictions
// for encoded images.
import type { Prediction } from '@graft/contract';
import { applyTemperature, manifestTemperature } from '@graft/inference';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from './backend';
import { ImageDecodeError } from './errors';
import { MANIFEST_FILE, type GraftManifest } from './export';
import { toClassProbabilities } from './evaluate';
import { memoryReader, parseJsonFile, readerHandler } from './model-files';
import { decodeImage, mapConcurrent, normalizePixels, resizeKernelOf, DEFAULT_DECODE_CONCURRENCY } from './preprocess';

export type { Prediction };

export interface Classifier {
  readonly labels: string[];
  readonly inputSize: number;
  readonly manifest: GraftManifest;
  /**
   * The topK most probable labels of each image, most probable first. Rejects with an ImageDecodeError whose
   * `index` names the first image that cannot be decoded.
   */
  predict(images: Uint8Array[], topK?: number): Promise<Prediction[][]>;
  /** Per-class probabilities of each image, in label order, calibrated as graft.json says. */
  probabilities(images: Uint8Array[]): Promise<Float32Array[]>;
  dispose(): void;
}

const PREDICT_BATCH = 32;

export async function loadClassifier(files: Record<string, Uint8Array> | ((name: string) => Promise<Uint8Array>)): Promise<Classifier> {
  await initBackend();
  const read = memoryReader(files);
  const manifest = parseJsonFile<GraftManifest>(await read(MANIFEST_FILE), MANIFEST_FILE);
  if (!Array.isArray(manifest.labels) || !manifest.labels.length || !Number.isInteger(manifest.inputSize)) {
    throw new Error(`${MANIFEST_FILE} must name the labels and the input size`);
  }
  const model = await tf.loadLayersModel(readerHandler(read, { modelJson: manifest.modelFile ?? 'model.json' }));
  const { labels, inputSize: size, preprocessing } = manifest;
  const kernel = resizeKernelOf(preprocessing);
  const temperature = manifestTemperature(manifest);
  let disposed = false;

  const probabilities = async (images: Uint8Array[]): Promise<Float32Array[]> => {
    if (disposed) throw new Error('the classifier has been disposed');
    const decoded = await mapConcurrent(images, DEFAULT_DECODE_CONCURRENCY, async (bytes, i) => {
      try {
        return await decodeImage(bytes, size, kernel);
      } catch (err) {
        return new ImageDecodeError(i, err);
      }
    });
    const bad = decoded.find((d): d is ImageDecodeError => d instanceof ImageDecodeError);
    if (bad) throw bad;
    const per = size * size * 3;
    const result: Float32Array[] = [];
    for (let start = 0; start < decoded.length; start += PREDICT_BATCH) {
      const batch = decoded.slice(start, start + PREDICT_BATCH) as Uint8Array[];
      const buf = new Float32Array(batch.length * per);
      batch.forEach((img, j) => normalizePixels(img, preprocessing, buf.subarray(j * per, (j + 1) * per)));
      const out = tf.tidy(() => model.predict(tf.tensor4d(buf, [batch.length, size, size, 3])) as tf.Tensor);
      const data = (await out.data()) as Float32Array;
      out.dispose();
      result.push(...toClassProbabilities(data, batch.length, labels.length).map((p) => applyTemperature(p, temperature)));
    }
    return result;
  };

  return {
    labels: [...labels],
    inputSize: size,
    manifest,
    probabilities,
    async predict(images, topK = 5) {
      const k = Math.max(1, Math.min(Math.floor(topK), labels.length));
      const probs = await probabilities(images);
      return probs.map((p) =>
        Array.from(p, (probability, i) => ({ label: labels[i]!, probability }))
          .sort((a, b) => b.probability - a.probability)
          .slice(0, k),
      );
    },
    dispose() {
      if (!disposed) {
        disposed = true;
        model.dispose();
      }
    },
  };
}

// Grad-CAM: where in an image the classifier looked for a class. The gradients of the class's log-probability
// with respect to the last convolutional feature map (the last layer with a spatial output, below the head's
// pooling), averaged over each channel, weight the channels of that map; their sum, negative parts dropped and
// scaled to [0, 1], is the heatmap (one value per cell of the map, row-major). The overlay is the heatmap,
// coloured and resized, laid over the image as a PNG.
import type { Explanation } from '@graft/contract';
import { applyTemperature, manifestTemperature } from '@graft/inference';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { initBackend, type LogFn } from './backend';
import { createFrozenModel, type FrozenModel } from './frozen';
import { ImageDecodeError } from './errors';
import { argMax } from './evaluate';
import { MANIFEST_FILE, type GraftManifest } from './export';
import { memoryReader, parseJsonFile, readerHandler } from './model-files';
import { decodeImage, normalizePixels, resizeKernelOf } from './preprocess';

export type { Explanation };

export interface Explainer {
  readonly labels: string[];
  /** Rejects with an ImageDecodeError for an image that cannot be decoded, a RangeError for an unknown label. */
  explain(image: Uint8Array, label?: string): Promise<Explanation>;
  dispose(): void;
}

/** Longest side of the overlay PNG. */
const OVERLAY_MAX = 448;

/** The index of the last layer whose output is a spatial map ([batch, h, w, c]), where the head starts after it. */
function lastConvIndex(model: tf.LayersModel): number {
  for (let i = model.layers.length - 1; i >= 0; i--) {
    const shape = model.layers[i]!.outputShape as number[];
    if (Array.isArray(shape) && shape.length === 4 && typeof shape[1] === 'number' && model.layers[i]!.getClassName() !== 'InputLayer') return i;
  }
  throw new Error('the model has no convolutional feature map to explain');
}

/** Loads a classifier's files (as loadClassifier does) for explanations. */
export async function loadExplainer(
  files: Record<string, Uint8Array> | ((name: string) => Promise<Uint8Array>),
  opts: { log?: LogFn } = {},
): Promise<Explainer> {
  await initBackend();
  const read = memoryReader(files);
  const manifest = parseJsonFile<GraftManifest>(await read(MANIFEST_FILE), MANIFEST_FILE);
  const model = await tf.loadLayersModel(readerHandler(read, { modelJson: manifest.modelFile ?? 'model.json' }));
  const cut = lastConvIndex(model);
  const conv = tf.model({ inputs: model.inputs, outputs: model.layers[cut]!.output as tf.SymbolicTensor });
  // The forward pass to the map runs on ONNX Runtime in a worker thread where it can (TF.js otherwise): it is most
  // of an explanation's time; only the head, a few small layers, is differentiated in TF.js.
  let forward: FrozenModel;
  try {
    forward = await createFrozenModel(conv, { what: 'feature map to explain', log: opts.log });
  } catch (err) {
    model.dispose();
    throw err;
  }
  const mapShape = [1, ...forward.outputShapes[0]!] as [number, number, number, number];
  // The layers above the map form a chain (pooling, dense, dropout, predictions).
  const above = model.layers.slice(cut + 1);
  const head = (map: tf.Tensor): tf.Tensor => above.reduce((x, layer) => layer.apply(x, { training: false }) as tf.Tensor, map);
  const { labels, inputSize: size, preprocessing } = manifest;
  const kernel = resizeKernelOf(preprocessing);
  const temperature = manifestTemperature(manifest);

  return {
    labels: [...labels],
    async explain(image, label) {
      let pixels: Uint8Array;
      try {
        pixels = await decodeImage(image, size, kernel);
      } catch (err) {
        throw new ImageDecodeError(0, err);
      }
      const input = normalizePixels(pixels, preprocessing);
      const [map] = await forward.run(input, 1, { transfer: true });
      const [mapT, probsT] = tf.tidy(() => {
        const m = tf.tensor4d(map!, mapShape);
        return [m, head(m)];
      });
      try {
        const out = (await probsT.data()) as Float32Array;
        const probs = Array.from(applyTemperature(out.length === 1 ? Float32Array.of(1 - out[0]!, out[0]!) : out, temperature));
        const c = label === undefined ? argMax(probs) : labels.indexOf(label);
        if (c < 0) throw new RangeError(`label ${JSON.stringify(label)} is not one of the model's: ${labels.join(', ')}`);
        const cam = tf.tidy(() => {
          const score = (m: tf.Tensor) => {
            // A one-hot product rather than gather, whose gradient the wasm backend lacks.
            const p = head(m).reshape([-1]);
            const pc = out.length === 1 ? (c === 1 ? p.sum() : tf.sub(1, p.sum())) : tf.mul(p, tf.oneHot(c, out.length)).sum();
            return tf.log(tf.maximum(pc, 1e-7)) as tf.Scalar;
          };
          const grads = tf.grad(score)(mapT) as tf.Tensor4D;
          const weights = grads.mean([1, 2], true);
          return tf.relu(tf.mul(mapT, weights).sum(3)).squeeze([0]) as tf.Tensor2D;
        });
        const [h, w] = cam.shape;
        const raw = (await cam.data()) as Float32Array;
        cam.dispose();
        const max = raw.reduce((m, v) => Math.max(m, v), 0);
        const values = Array.from(raw, (v) => (max > 0 ? v / max : 0));
        return { label: labels[c]!, probability: probs[c]!, heatmap: { width: w, height: h, values }, overlay: await overlayPng(image, values, w, h) };
      } finally {
        mapT.dispose();
        probsT.dispose();
      }
    },
    dispose() {
      void forward.dispose();
      model.dispose();
    },
  };
}

/** A colour for a heat value in [0, 1]: blue, through green and yellow, to red. */
function heatColour(v: number): [number, number, number] {
  const r = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 3)));
  const g = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 2)));
  const b = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 1)));
  return [Math.round(255 * r), Math.round(255 * g), Math.round(255 * b)];
}

/** The heatmap, coloured and resized to the image (its longest side at most OVERLAY_MAX), blended over it. */
async function overlayPng(image: Uint8Array, values: number[], w: number, h: number): Promise<string> {
  const base = sharp(image).rotate().resize(OVERLAY_MAX, OVERLAY_MAX, { fit: 'inside', withoutEnlargement: true }).removeAlpha();
  const { data, info } = await base.raw().toBuffer({ resolveWithObject: true });
  const cells = Buffer.alloc(w * h * 4);
  values.forEach((v, i) => {
    const [r, g, b] = heatColour(v);
    cells.set([r, g, b, Math.round(110 + 100 * v)], i * 4);
  });
  const heat = await sharp(cells, { raw: { width: w, height: h, channels: 4 } })
    .resize(info.width, info.height, { fit: 'fill', kernel: 'cubic' })
    .png()
    .toBuffer();
  const png = await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels as 3 } })
    .composite([{ input: heat, blend: 'over' }])
    .png()
    .toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

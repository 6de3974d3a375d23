import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { resolveConfig, type TrainingConfigInput } from '@graft/contract';
import { initBackend } from '../src/backend';
import { loadBackbone } from '../src/backbones';
import { loadClassifier } from '../src/classifier';
import { loadLayersModelFromFiles } from '../src/model-files';
import { Checkpoints, type Checkpoint } from '../src/checkpoint';
import { classificationMetrics } from '../src/evaluate';
import { preprocessImage, TRAINING_RESIZE_KERNEL, type Preprocessing } from '../src/preprocess';
import { train, type TrainEvent, type TrainOptions, type TrainResult } from '../src/train';
import { chosenEpochs } from '../src/train/refit';
import { createTinyBackboneSource, memoryCheckpointStore, syntheticSet, TINY_BACKBONE, type SyntheticSet } from './fixtures';

let backbones: { source: string; cleanup(): void };
let twoClass: SyntheticSet;

beforeAll(async () => {
  await initBackend();
  backbones = await createTinyBackboneSource();
  twoClass = await syntheticSet(['red', 'blue'], { train: 10, validation: 5, test: 5 });
});
afterAll(() => backbones?.cleanup());

const fastHead: TrainingConfigInput = {
  backbone: TINY_BACKBONE,
  batchSize: 8,
  head: { units: 16, dropout: 0.1 },
  augmentation: { copies: 1, rotationRange: 10, zoomRange: 0.1, widthShiftRange: 0.1, heightShiftRange: 0.1 },
  featureExtraction: { epochs: 12, optimizer: 'adam', learningRate: 0.01 },
  fineTuning: { epochs: 3, optimizer: 'adam', learningRate: 0.001 },
  earlyStopping: false,
};

function options(set: SyntheticSet, config: TrainingConfigInput, extra: Partial<TrainOptions> = {}): TrainOptions {
  return {
    config: resolveConfig(config),
    labels: set.labels,
    splits: set.splits,
    readImage: set.readImage,
    backbones: backbones.source,
    ...extra,
  };
}

/**
 * The out-of-distribution bank holds, per training image in order, the unit-length pooled features of the trained
 * network on the image itself (not an augmented copy).
 */
async function expectBankOfTrainingImages(result: TrainResult, set: SyntheticSet): Promise<void> {
  const ood = result.graft.outOfDistribution!;
  const bank = new Float32Array(result.artifacts['ood-features.bin']!.slice().buffer);
  const trained = await loadLayersModelFromFiles(result.artifacts);
  const features = tf.model({ inputs: trained.inputs, outputs: trained.getLayer(ood.featureLayer).output as tf.SymbolicTensor });
  try {
    const size = result.graft.inputSize;
    // Training resized with the filter graft.json names; the bank matches only images resized the same way.
    expect(result.graft.preprocessing.resizeKernel).toBe(TRAINING_RESIZE_KERNEL);
    const inputs = await Promise.all(set.splits.train.map((r) => preprocessImage(set.images.get(r.key)!, size, result.graft.preprocessing as Preprocessing)));
    const x = tf.tensor4d(Float32Array.from(inputs.flatMap((a) => Array.from(a))), [inputs.length, size, size, 3]);
    const f = features.predict(x) as tf.Tensor2D;
    const rows = f.arraySync();
    tf.dispose([x, f]);
    expect(ood.bankSize).toBe(rows.length);
    rows.forEach((row, i) => {
      const norm = Math.hypot(...row);
      const got = Array.from(bank.subarray(i * ood.featureSize, (i + 1) * ood.featureSize));
      got.forEach((v, k) => expect(v).toBeCloseTo(row[k]! / norm, 3));
    });
  } finally {
    trained.dispose();
  }
}

/**
 * Training's test predictions (and validation predictions, where the run did not refit: after a refit they are the
 * chosen model's) are the exported model's (calibrated) probabilities, image by image.
 */
async function expectExportedModelPredictions(result: TrainResult, set: SyntheticSet): Promise<void> {
  const clf = await loadClassifier(result.artifacts);
  try {
    for (const split of result.refit ? (['test'] as const) : (['validation', 'test'] as const)) {
      const served = await clf.probabilities(set.splits[split].map((r) => set.images.get(r.key)!));
      expect(result.predictions[split]!.map((p) => p.key)).toEqual(set.splits[split].map((r) => r.key));
      result.predictions[split]!.forEach((p, i) => p.probabilities.forEach((q, k) => expect(q).toBeCloseTo(served[i]![k]!, 4)));
    }
    // The classes the int8 check compares with are the exported model's, refit or not.
    const served = await clf.probabilities(set.splits.validation.map((r) => set.images.get(r.key)!));
    expect(result.exportedValidationClasses).toEqual(served.map((p) => p.indexOf(Math.max(...p))));
  } finally {
    clf.dispose();
  }
}

function testBytes(set: SyntheticSet): Uint8Array[] {
  return set.splits.test.map((r) => set.images.get(r.key)!);
}

describe('train', () => {
  it('feature extraction learns two classes and reports phases, progress, history and metrics', async () => {
    const events: TrainEvent[] = [];
    const result = await train(options(twoClass, { ...fastHead, method: 'feature_extraction' }, { onEvent: (e) => events.push(e) }));

    const phases = events.filter((e) => e.type === 'phase').map((e) => (e as { phase: string }).phase);
    expect(phases).toEqual(['preparing', 'extracting', 'training_head', 'refitting', 'evaluating', 'exporting']);
    const progress = events.filter((e) => e.type === 'progress').map((e) => (e as { progress: number }).progress);
    expect(progress.every((p, i) => p >= 0 && p <= 1 && (i === 0 || p >= progress[i - 1]! - 1e-9))).toBe(true);
    expect(progress.at(-1)).toBeCloseTo(1, 5);

    expect(result.history).toHaveLength(12);
    expect(result.history.map((r) => r.epoch)).toEqual([...Array(12).keys()].map((i) => i + 1));
    expect(result.history.every((r) => r.phase === 'training_head' && r.attempt === 1 && r.valLoss !== null)).toBe(true);
    expect(events.filter((e) => e.type === 'epoch')).toHaveLength(12);
    // Without early stopping the head's epoch of lowest validation loss is the one kept, and the refit trains that many.
    const best = result.history.reduce((a, r) => (r.valLoss! < a.valLoss! ? r : a));
    expect(result.refit).toEqual({ headEpochs: best.epoch, fineTuningEpochs: 0, images: result.counts.train + result.counts.validation });

    expect(result.validation!.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(result.test!.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(result.test!.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(10);
    expect(result.test!.perClass.red!.support).toBe(5);
    expect(Object.keys(result.artifacts).sort()).toEqual(['graft.json', 'model.json', 'ood-features.bin', 'weights.bin']);
    expect(result.graft).toMatchObject({ labels: ['red', 'blue'], inputSize: 32, backbone: TINY_BACKBONE, outputActivation: 'sigmoid' });
    // The out-of-distribution bank: one unit vector per training image, and the layer they come from.
    const ood = result.graft.outOfDistribution!;
    expect(ood).toMatchObject({ method: 'knn', bankFile: 'ood-features.bin', bankSize: result.counts.train });
    expect(result.artifacts['ood-features.bin']!.byteLength).toBe(ood.bankSize * ood.featureSize * 4);
    const bank = new Float32Array(result.artifacts['ood-features.bin']!.slice().buffer);
    expect(Math.hypot(...bank.subarray(0, ood.featureSize))).toBeCloseTo(1, 4);
    expect(ood.threshold).toBeGreaterThan(0);
    await expectBankOfTrainingImages(result, twoClass);
    expect(result.graft.preprocessing).toMatchObject({ mode: 'tf', resize: 'stretch' });
    // The temperature fitted on validation is in the manifest and in both splits' calibration reports.
    const t = result.graft.calibration!.temperature;
    expect(result.graft.calibration).toMatchObject({ fittedOn: 'validation', images: result.counts.validation });
    expect(t).toBeGreaterThan(0);
    for (const m of [result.validation!, result.test!]) {
      expect(m.calibration!.temperature).toBe(t);
      expect(m.calibration!.reliability).toHaveLength(15);
      expect(m.calibration!.reliability.reduce((s, b) => s + b.count, 0)).toBe(m.confusionMatrix.flat().reduce((a, b) => a + b, 0));
      expect(m.calibration!.ece).toBeGreaterThanOrEqual(0);
      expect(m.calibration!.calibratedEce).toBeGreaterThanOrEqual(0);
    }
    // Per image: keys of the test split in order, and (label, predicted) pairs that make up each confusion matrix.
    expect(result.predictions.test!.map((p) => p.key)).toEqual(twoClass.splits.test.map((r) => r.key));
    for (const split of ['validation', 'test'] as const) {
      const cm = result[split]!.confusionMatrix.map((row) => row.map(() => 0));
      for (const p of result.predictions[split]!) cm[p.label]![p.predicted]! += 1;
      expect(cm).toEqual(result[split]!.confusionMatrix);
    }
    // Fitted to minimise the validation loss: never above the uncalibrated one.
    expect(result.validation!.calibration!.calibratedLoss).toBeLessThanOrEqual(result.validation!.loss + 1e-6);
  });

  it('export -> loadClassifier -> predict gives the probabilities the in-memory model gave', async () => {
    const result = await train(options(twoClass, { ...fastHead, method: 'feature_extraction', featureExtraction: { epochs: 4, optimizer: 'adam', learningRate: 0.01 } }));
    const clf = await loadClassifier(result.artifacts);
    try {
      expect(clf.labels).toEqual(['red', 'blue']);
      expect(clf.inputSize).toBe(32);
      const probs = await clf.probabilities(testBytes(twoClass));
      // loadClassifier serves calibrated probabilities: their loss is the calibrated test loss.
      const again = classificationMetrics(probs, twoClass.splits.test.map((r) => r.label), twoClass.labels);
      expect(again.loss).toBeCloseTo(result.test!.calibration!.calibratedLoss, 5);
      expect(again.confusionMatrix).toEqual(result.test!.confusionMatrix);

      const top = await clf.predict(testBytes(twoClass), 5);
      expect(top).toHaveLength(10);
      for (const [i, preds] of top.entries()) {
        expect(preds.map((p) => p.label).sort()).toEqual(['blue', 'red']);
        expect(preds[0]!.probability).toBeGreaterThanOrEqual(preds[1]!.probability);
        expect(preds[0]!.probability + preds[1]!.probability).toBeCloseTo(1, 5);
        expect(preds.find((p) => p.label === 'blue')!.probability).toBeCloseTo(probs[i]![1]!, 6);
      }
      expect((await clf.predict(testBytes(twoClass).slice(0, 1), 1))[0]).toHaveLength(1);

      const bad = [testBytes(twoClass)[0]!, new Uint8Array([1, 2, 3, 4]), testBytes(twoClass)[1]!];
      await expect(clf.predict(bad)).rejects.toMatchObject({ index: 1 });
    } finally {
      clf.dispose();
    }
  });

  it('fine-tuning trains the top block and leaves the frozen layers as they were', async () => {
    const result = await train(options(twoClass, { ...fastHead, method: 'fine_tuning', featureExtraction: { epochs: 4, optimizer: 'adam', learningRate: 0.01 } }));
    expect(result.history.filter((r) => r.phase === 'training_head')).toHaveLength(4);
    expect(result.history.filter((r) => r.phase === 'fine_tuning').map((r) => r.epoch)).toEqual([1, 2, 3]);

    const base = await loadBackbone(TINY_BACKBONE, backbones.source);
    try {
      const trained = await loadLayersModelFromFiles(result.artifacts);
      const w = (m: tf.LayersModel, layer: string) => Array.from(m.getLayer(layer).getWeights()[0]!.dataSync());
      expect(w(trained, 'tiny_conv1')).toEqual(w(base, 'tiny_conv1'));
      expect(w(trained, 'tiny_conv2')).toEqual(w(base, 'tiny_conv2'));
      expect(w(trained, 'tiny_top_bn')).toEqual(w(base, 'tiny_top_bn'));
      expect(w(trained, 'tiny_top_conv')).not.toEqual(w(base, 'tiny_top_conv'));
      trained.dispose();
    } finally {
      base.dispose();
    }
    expect(result.test!.accuracy).toBeGreaterThanOrEqual(0.9);
    // The bank comes from the cached features, through the fine-tuned top block.
    await expectBankOfTrainingImages(result, twoClass);
    // So do the validation and test predictions: they are the exported model's (calibrated) probabilities.
    await expectExportedModelPredictions(result, twoClass);
  });

  it('with the frozen base in int8, both frozen parts of fine-tuning switch to int8 once calibrated', async () => {
    const logged: { obj: Record<string, unknown>; msg: string }[] = [];
    const result = await train(
      options(twoClass, { ...fastHead, method: 'fine_tuning', featureExtraction: { epochs: 2, optimizer: 'adam', learningRate: 0.01 }, fineTuning: { epochs: 1, optimizer: 'adam', learningRate: 0.001 } }, {
        frozenEngine: 'onnxruntime',
        frozenPrecision: 'int8',
        log: (obj, msg) => logged.push({ obj: obj as Record<string, unknown>, msg }),
      }),
    );
    // The part below the top block (whose outputs fine-tuning caches) and the top block as pretrained (whose pooled
    // outputs the head trains on): 40 training passes, 32 of them calibrated on.
    const switched = logged.filter((l) => / runs in int8 from now on$/.test(l.msg)).map((l) => l.obj.model);
    expect(switched).toHaveLength(2);
    expect(switched.some((m) => / below /.test(String(m)))).toBe(true);
    expect(switched.some((m) => / from /.test(String(m)))).toBe(true);
    // Validation and test images went through the frozen parts in fp32: what training reports of them is the
    // exported (fp32) model's, which the int8 check of a served model compares with.
    await expectExportedModelPredictions(result, twoClass);
  });

  // The head trains on features the frozen top block pools (in its ONNX model, as the head's pooling layer does). With
  // fine-tuning too slow to move anything, the model reported is the head's, whichever phase is kept: the evaluation
  // reaches the head's validation loss through the exported model only where both pool alike.
  it.each(['avg', 'max'] as const)("the head trains on the top block's features pooled as the exported model pools them (%s)", async (pooling) => {
    const result = await train(
      options(twoClass, {
        ...fastHead,
        head: { ...fastHead.head, pooling },
        method: 'fine_tuning',
        refit: false,
        featureExtraction: { epochs: 4, optimizer: 'adam', learningRate: 0.01 },
        fineTuning: { epochs: 1, optimizer: 'adam', learningRate: 1e-9 },
      }),
    );
    const headBest = Math.min(...result.history.filter((r) => r.phase === 'training_head').map((r) => r.valLoss!));
    expect(result.history.filter((r) => r.phase === 'fine_tuning')).toHaveLength(1);
    expect(result.validation!.loss).toBeCloseTo(headBest, 4);
  });

  it('fine-tuning that never validates below the head stops after its patience and leaves the model as the head left it', async () => {
    const result = await train(
      options(twoClass, {
        ...fastHead,
        method: 'fine_tuning',
        featureExtraction: { epochs: 4, optimizer: 'adam', learningRate: 0.01 },
        // Steps of about 1 per weight: the top block's features are wrecked in the first batch.
        fineTuning: { epochs: 5, optimizer: 'adam', learningRate: 1 },
        // The head's patience would let all five epochs run; fine-tuning's own stops it after two.
        earlyStopping: { patience: 10, fineTuningPatience: 2 },
      }),
    );
    const losses = (phase: string) => result.history.filter((r) => r.phase === phase).map((r) => r.valLoss!);
    const headBest = Math.min(...losses('training_head'));
    expect(losses('fine_tuning')).toHaveLength(2);
    // Fine-tuning at this rate only made the model worse...
    expect(losses('fine_tuning').every((l) => !(l < headBest))).toBe(true);
    // ...so the model is the head's best: its validation loss, and the top block as pretrained.
    expect(result.validation!.loss).toBeCloseTo(headBest, 4);
    const base = await loadBackbone(TINY_BACKBONE, backbones.source);
    const trained = await loadLayersModelFromFiles(result.artifacts);
    try {
      const w = (m: tf.LayersModel) => Array.from(m.getLayer('tiny_top_conv').getWeights()[0]!.dataSync());
      expect(w(trained)).toEqual(w(base));
    } finally {
      trained.dispose();
      base.dispose();
    }
  });

  it('frees every tensor it allocates, whether it finishes or is aborted', async () => {
    const config = {
      ...fastHead,
      method: 'fine_tuning' as const,
      featureExtraction: { epochs: 2, optimizer: 'adam' as const, learningRate: 0.01 },
      fineTuning: { epochs: 2, optimizer: 'adam' as const, learningRate: 0.001 },
    };
    await train(options(twoClass, config)); // burn-in: kernels and backend state allocated once
    const before = tf.memory().numTensors;
    await train(options(twoClass, config));
    expect(tf.memory().numTensors).toBe(before);
    const controller = new AbortController();
    const aborted = train(
      options(twoClass, config, {
        signal: controller.signal,
        onCheckpoint: async (c) => {
          if (c.meta.phase === 'fine_tuning') controller.abort();
        },
      }),
    );
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('learns three classes with softmax, carving validation from train when the dataset has none', async () => {
    const three = await syntheticSet(['red', 'green', 'blue'], { train: 10, validation: 0, test: 0 }, 2);
    const result = await train(
      options(three, { ...fastHead, method: 'feature_extraction', augmentation: { mode: 'end_to_end' }, split: { validation: 0.3, test: 0.2, seed: 3 } }),
    );
    expect(result.counts).toEqual({ train: 15, validation: 9, test: 6, skipped: 0 });
    expect(result.graft.outputActivation).toBe('softmax');
    expect(result.test!.confusionMatrix).toHaveLength(3);
    expect(result.validation!.accuracy).toBeGreaterThanOrEqual(0.8);
  });

  it('fine-tunes with augmentation end to end (new augmented images through the frozen part every epoch)', async () => {
    const result = await train(
      options(twoClass, {
        ...fastHead,
        method: 'fine_tuning',
        augmentation: { mode: 'end_to_end', horizontalFlip: true },
        featureExtraction: { epochs: 6, optimizer: 'adam', learningRate: 0.01 },
        fineTuning: { epochs: 2, optimizer: 'adam', learningRate: 0.001 },
      }),
    );
    expect(result.history.map((r) => `${r.phase}:${r.epoch}`)).toEqual([
      ...[1, 2, 3, 4, 5, 6].map((e) => `training_head:${e}`),
      'fine_tuning:1',
      'fine_tuning:2',
    ]);
    expect(result.validation!.accuracy).toBeGreaterThanOrEqual(0.9);
    // Nothing cached: the bank comes from the images through the trained network.
    await expectBankOfTrainingImages(result, twoClass);
  });

  it('leaves out images that cannot be decoded, also while their features are computed as they decode', async () => {
    const broken = new Uint8Array([1, 2, 3, 4]);
    const set: SyntheticSet = {
      ...twoClass,
      splits: {
        train: [...twoClass.splits.train, { key: 'broken-train', label: 0 }],
        validation: [...twoClass.splits.validation, { key: 'broken-validation', label: 1 }],
        test: twoClass.splits.test,
      },
      readImage: async (key) => (key.startsWith('broken') ? broken : twoClass.readImage(key)),
    };
    const logged: string[] = [];
    const epochs: TrainEvent[] = [];
    const result = await train(
      options(set, { ...fastHead, method: 'fine_tuning', featureExtraction: { epochs: 4, optimizer: 'adam', learningRate: 0.01 }, fineTuning: { epochs: 1, optimizer: 'adam', learningRate: 0.001 } }, {
        log: (obj, msg) => logged.push(`${msg} ${JSON.stringify(obj)}`),
        onEvent: (e) => e.type === 'epoch' && epochs.push(e),
      }),
    );
    expect(result.counts).toEqual({ train: 20, validation: 10, test: 10, skipped: 2 });
    expect(logged.filter((l) => l.startsWith('skipping an image that cannot be decoded'))).toHaveLength(2);
    // 20 training images and one augmented copy of each went through the frozen part, and 10 validation images and
    // one copy of each (for the refit).
    expect(logged.find((l) => l.startsWith('features extracted'))).toMatch(/"images":60,/);
    expect(result.validation!.accuracy).toBeGreaterThanOrEqual(0.9);
  });

  it('refits: the chosen epochs again on training and validation images, with the chosen model reported on validation', async () => {
    const config: TrainingConfigInput = {
      ...fastHead,
      method: 'fine_tuning',
      featureExtraction: { epochs: 4, optimizer: 'adam', learningRate: 0.01 },
      fineTuning: { epochs: 3, optimizer: 'adam', learningRate: 0.001 },
    };
    const chosen = await train(options(twoClass, { ...config, refit: false }));
    const events: TrainEvent[] = [];
    const refitted = await train(options(twoClass, config, { onEvent: (e) => events.push(e) }));
    expect(chosen.refit).toBeNull();
    const epochs = chosenEpochs(chosen.history);
    expect(refitted.refit).toEqual({ headEpochs: epochs.head, fineTuningEpochs: epochs.fineTuning, images: 30 });
    // Both phases refit (fine-tuning beat the head on this set).
    expect(epochs.head).toBeGreaterThan(0);
    expect(epochs.fineTuning).toBeGreaterThan(0);
    // The selection is the same run: its history, and what is reported of the validation images (metrics,
    // predictions, the temperature fitted on them) are the chosen model's.
    const epochsOf = (r: TrainResult) => r.history.map(({ seconds: _, ...row }) => row);
    expect(epochsOf(refitted)).toEqual(epochsOf(chosen));
    expect(events.filter((e) => e.type === 'epoch')).toHaveLength(chosen.history.length);
    expect(refitted.validation).toEqual(chosen.validation);
    expect(refitted.predictions.validation).toEqual(chosen.predictions.validation);
    expect(refitted.graft.calibration).toEqual(chosen.graft.calibration);
    // The model exported is another one, trained on the validation images too, and the test metrics are its own.
    const testProbabilities = (r: TrainResult) => r.predictions.test!.flatMap((p) => p.probabilities);
    expect(testProbabilities(refitted)).not.toEqual(testProbabilities(chosen));
    await expectExportedModelPredictions(refitted, twoClass);
    const phases = events.filter((e) => e.type === 'phase').map((e) => (e as { phase: string }).phase);
    expect(phases.indexOf('refitting')).toBe(phases.indexOf('evaluating') - 1);
  });

  it('chosenEpochs: the epoch of lowest validation loss of the head, and of fine-tuning where it beats the head', () => {
    const row = (phase: 'training_head' | 'fine_tuning', epoch: number, valLoss: number | null) => ({ phase, epoch, attempt: 1, loss: 1, accuracy: 0.5, valLoss, valAccuracy: null, seconds: 1 });
    const head = [row('training_head', 1, 0.5), row('training_head', 2, 0.3), row('training_head', 3, 0.4)];
    expect(chosenEpochs(head)).toEqual({ head: 2, fineTuning: 0 });
    expect(chosenEpochs([...head, row('fine_tuning', 1, 0.35), row('fine_tuning', 2, 0.31)])).toEqual({ head: 2, fineTuning: 0 });
    expect(chosenEpochs([...head, row('fine_tuning', 1, 0.29), row('fine_tuning', 2, 0.2), row('fine_tuning', 3, 0.25)])).toEqual({ head: 2, fineTuning: 2 });
    expect(chosenEpochs([row('training_head', 1, null)])).toEqual({ head: 0, fineTuning: 0 });
  });

  it('rejects a training set with a single class', async () => {
    const oneClass = { ...twoClass.splits, train: twoClass.splits.train.filter((r) => r.label === 0) };
    await expect(train({ ...options(twoClass, fastHead), splits: oneClass })).rejects.toMatchObject({ code: 'TOO_FEW_CLASSES' });
  });

  it('trains the scratch convnet end to end', async () => {
    const three = await syntheticSet(['red', 'green', 'blue'], { train: 8, validation: 4, test: 0 }, 3);
    const result = await train(
      options(three, {
        method: 'scratch',
        inputSize: 48,
        batchSize: 8,
        augmentation: { rotationRange: 10, horizontalFlip: true },
        featureExtraction: { epochs: 8, optimizer: 'adam', learningRate: 0.002 },
        earlyStopping: false,
      }),
    );
    expect(result.history).toHaveLength(8);
    expect(result.graft).toMatchObject({ backbone: null, method: 'scratch', inputSize: 48 });
    expect(result.history.at(-1)!.loss).toBeLessThan(result.history[0]!.loss);
    expect(result.validation!.accuracy).toBeGreaterThanOrEqual(0.75);
  });

  it('stops early on validation loss and keeps the best epoch', async () => {
    // Validation labels are the opposite of what the images show, so the better the head fits the training
    // images the worse the validation loss gets: it must stop a few epochs in and keep an early epoch.
    const inverted = { ...twoClass.splits, validation: twoClass.splits.validation.map((r) => ({ ...r, label: 1 - r.label })) };
    const result = await train({
      ...options(twoClass, { ...fastHead, method: 'feature_extraction', featureExtraction: { epochs: 60, optimizer: 'adam', learningRate: 0.05 }, earlyStopping: { patience: 2 } }),
      splits: inverted,
    });
    const rows = result.history;
    expect(rows.length).toBeLessThan(60);
    // With a patience of 2 it stops two epochs after its best one: the epochs before the last two hold the lowest
    // validation loss, neither of the last two improved on it, and the model kept is that epoch's.
    const best = Math.min(...rows.slice(0, -2).map((r) => r.valLoss!));
    expect(rows.slice(-2).map((r) => r.valLoss! >= best)).toEqual([true, true]);
    expect(rows.findIndex((r) => r.valLoss === best)).toBe(rows.length - 3);
    expect(result.validation!.loss).toBeCloseTo(best, 4);
  });

  it('a checkpoint resumes at the next epoch and keeps the earlier history', async () => {
    const config = { ...fastHead, method: 'fine_tuning' as const, featureExtraction: { epochs: 3, optimizer: 'adam' as const, learningRate: 0.01 } };
    const checkpoints: Checkpoint[] = [];
    const controller = new AbortController();
    await expect(
      train(
        options(twoClass, config, {
          signal: controller.signal,
          onCheckpoint: async (c) => {
            // As a retried job gets it back: through the stored format.
            const store = memoryCheckpointStore();
            await new Checkpoints(store.store).save(c);
            checkpoints.push((await new Checkpoints(store.store).load())!);
            if (c.meta.phase === 'fine_tuning' && c.meta.epoch === 1) controller.abort();
          },
        }),
      ),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(checkpoints.map((c) => `${c.meta.phase}:${c.meta.epoch}`)).toEqual(['training_head:1', 'training_head:2', 'training_head:3', 'fine_tuning:1']);

    const resumedFrom = checkpoints.at(-1)!;
    const events: TrainEvent[] = [];
    const later: Checkpoint[] = [];
    const result = await train(
      options(twoClass, config, { resume: resumedFrom, attempt: 2, onEvent: (e) => events.push(e), onCheckpoint: async (c) => void later.push(c) }),
    );
    expect(result.history.map((r) => `${r.phase}:${r.epoch}:${r.attempt}`)).toEqual([
      'training_head:1:1',
      'training_head:2:1',
      'training_head:3:1',
      'fine_tuning:1:1',
      'fine_tuning:2:2',
      'fine_tuning:3:2',
    ]);
    expect(result.history.slice(0, 4)).toEqual(resumedFrom.meta.history);
    // the head phase was not run again
    expect(events.some((e) => e.type === 'phase' && e.phase === 'training_head')).toBe(false);
    expect(later.map((c) => c.meta.epoch)).toEqual([2, 3]);
    // but the refit was, as in a run never stopped: the chosen epochs of both phases, the head's features made anew
    const chosen = chosenEpochs(result.history);
    expect(result.refit).toEqual({ headEpochs: chosen.head, fineTuningEpochs: chosen.fineTuning, images: 30 });
    expect(events.some((e) => e.type === 'phase' && e.phase === 'refitting')).toBe(true);
  });

  it('resuming a head-phase checkpoint continues that phase', async () => {
    const config = { ...fastHead, method: 'feature_extraction' as const, featureExtraction: { epochs: 4, optimizer: 'adam' as const, learningRate: 0.01 } };
    let saved: Checkpoint | null = null;
    const controller = new AbortController();
    await expect(
      train(
        options(twoClass, config, {
          signal: controller.signal,
          onCheckpoint: async (c) => {
            if (c.meta.epoch === 2) {
              saved = c;
              controller.abort();
            }
          },
        }),
      ),
    ).rejects.toMatchObject({ name: 'AbortError' });
    const result = await train(options(twoClass, config, { resume: saved, attempt: 2 }));
    expect(result.history.map((r) => `${r.epoch}:${r.attempt}`)).toEqual(['1:1', '2:1', '3:2', '4:2']);
  });

  it('abort via the signal stops training mid-phase with an AbortError', async () => {
    const controller = new AbortController();
    let batchesAfterAbort = 0;
    let aborted = false;
    const started = performance.now();
    const run = train(
      options(twoClass, { ...fastHead, method: 'feature_extraction', featureExtraction: { epochs: 500, optimizer: 'adam', learningRate: 0.01 } }, {
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === 'epoch' && e.row.epoch === 2) {
            aborted = true;
            controller.abort();
          } else if (aborted && e.type === 'epoch') batchesAfterAbort++;
        },
      }),
    );
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(batchesAfterAbort).toBe(0);
    expect(performance.now() - started).toBeLessThan(60_000);
  });

  it('leaves no tensors behind after training and predicting', async () => {
    const config = { ...fastHead, method: 'fine_tuning' as const, featureExtraction: { epochs: 2, optimizer: 'rmsprop' as const, learningRate: 0.001 }, fineTuning: { epochs: 2, optimizer: 'rmsprop' as const, learningRate: 1e-4 } };
    const cycle = async () => {
      const result = await train(options(twoClass, config));
      const clf = await loadClassifier(result.artifacts);
      await clf.predict(testBytes(twoClass), 2);
      clf.dispose();
    };
    await cycle(); // burn-in
    const before = tf.memory().numTensors;
    await cycle();
    expect(tf.memory().numTensors).toBe(before);
  });
});

// Training a classifier, end to end: prepare the images, compute features through the frozen base, train the
// head (feature extraction), optionally fine-tune the top block with the head, evaluate, and export one model.
//
// Methods:
// - feature_extraction: frozen base, new head. With augmentation in 'cached' mode, the features of every training
//   image and of `copies` augmented copies of it are computed once; in 'end_to_end' mode new augmented images go
//   through the frozen base every epoch.
// - fine_tuning: feature extraction first, then the top block (from config.fineTuning.fromLayer, by default the
//   backbone's top block) is trained together with the head. The frozen part below it is run once per image copy
//   and cached, which is exact because it does not change; each fine-tuning epoch takes one copy of each image.
// - scratch: the small Keras convnet trained from random weights on [0, 1] pixels, augmented every epoch.
//
// Frozen passes (the backbone, or its part below the fine-tuned block) run on ONNX Runtime in a worker thread
// where they can (frozen.ts), TensorFlow.js otherwise; meanwhile this thread decodes (sharp) and augments the
// next images. The trained parts (head, top block, scratch convnet) train on TensorFlow.js.
import * as tf from '@tensorflow/tfjs';
import type { TrainingConfig } from './config';
import type { AugmentationOptions } from './augment';
import { getBackboneSpec, loadBackbone, type BackboneSource } from './backbones';
import { initBackend, type LogFn } from './backend';
import { checkpointState, checkpointWeights, makeCheckpoint, type Checkpoint } from './checkpoint';
import { AbortError, throwIfAborted, VisionError } from './errors';
import { classificationMetrics, toClassProbabilities, type TestMetrics } from './evaluate';
import { exportClassifier, makeManifest, type GraftManifest } from './export';
import { extractFeatures, FeatureStore, ImageSource, type ArrayForward, type ExtractItem, type PendingImage, type Sampling } from './features';
import { createFrozenModel, type FrozenModel } from './frozen';
import { GradientReplicas, trainThreads, variableRefs, type ReplicaSpec } from './replicas';
import { applyUpper, fineTuneForward, prepareFineTuning, type FineTuneParts } from './fine-tune';
import {
  disposeBatch,
  evaluateSource,
  fit,
  newPhaseState,
  phaseDone,
  readWeights,
  writeWeights,
  type BatchSource,
  type Forward,
  type HistoryRow,
  type LossKind,
  type PhaseState,
} from './fit';
import { disposeWeights } from './graph';
import { Head } from './head';
import { decodeInOrder, normalizePixels, PREPROCESSING, type Preprocessing } from './preprocess';
import { ProgressTracker, type Phase, type TrainEvent } from './progress';
import { buildScratchModel, SCRATCH_INPUT_SIZE } from './scratch';
import { carveSplits, type ImageRef } from './split';

export type { HistoryRow } from './fit';
export type { TrainEvent, Phase } from './progress';
export type { ImageRef } from './split';
export type { Checkpoint } from './checkpoint';

export interface TrainOptions {
  /** From resolveConfig(); inputSize null means the backbone's training size (150 for scratch). */
  config: TrainingConfig;
  labels: string[];
  /** Validation or test may be empty: they are then carved from train per config.split. */
  splits: { train: ImageRef[]; validation: ImageRef[]; test: ImageRef[] };
  /** Encoded bytes (JPEG, PNG, WebP) of an image. */
  readImage(key: string): Promise<Uint8Array>;
  /** Folder, file:// URL or http(s):// URL base holding `<backbone>/model.json`, or a reader of `<backbone>/<file>`. */
  backbones: BackboneSource;
  /** Aborting stops training before the next batch; train() then rejects with an AbortError. */
  signal?: AbortSignal;
  onEvent?(e: TrainEvent): void;
  /** Written into every history row (default 1). */
  attempt?: number;
  /** Continue from this checkpoint: finished epochs are skipped, earlier history rows kept. */
  resume?: Checkpoint | null;
  /** Called after every epoch with the checkpoint to store. */
  onCheckpoint?(c: Checkpoint): Promise<void>;
  log?: LogFn;
}

export interface TrainResult {
  /** `model.json`, `weights.bin`, `graft.json`. */
  artifacts: Record<string, Uint8Array>;
  history: HistoryRow[];
  test: TestMetrics | null;
  validation: { loss: number; accuracy: number } | null;
  labels: string[];
  graft: GraftManifest;
  /** Images per split after carving and after dropping undecodable ones. */
  counts: { train: number; validation: number; test: number; skipped: number };
}

/** Batch size of forward passes that are not training steps (feature extraction, evaluation). */
const INFERENCE_BATCH = 32;

/**
 * How a training epoch draws from cached features of images and their augmented copies. The head trains on
 * pooled vectors, which is cheap: every copy every epoch. Fine-tuning runs the top block on feature maps: one
 * copy of each image per epoch, a different one each epoch, as an epoch of on-the-fly augmentation does.
 */
const HEAD_SAMPLING: Sampling = 'all';

/** Backends whose kernels run on one thread: training steps there are shared with worker-thread replicas. */
const SINGLE_THREADED_BACKENDS = new Set(['wasm', 'cpu']);
const FINE_TUNING_SAMPLING: Sampling = 'one_per_group';

function makeOptimizer(name: 'rmsprop' | 'adam' | 'sgd', learningRate: number): tf.Optimizer {
  switch (name) {
    case 'adam':
      return tf.train.adam(learningRate);
    case 'sgd':
      return tf.train.sgd(learningRate);
    default:
      return tf.train.rmsprop(learningRate, 0.9, 0, 1e-7);
  }
}

function augmentationOptions(cfg: TrainingConfig['augmentation']): AugmentationOptions | null {
  if (cfg === false) return null;
  return {
    rotationRange: cfg.rotationRange,
    widthShiftRange: cfg.widthShiftRange,
    heightShiftRange: cfg.heightShiftRange,
    shearRange: cfg.shearRange,
    zoomRange: cfg.zoomRange,
    horizontalFlip: cfg.horizontalFlip,
    verticalFlip: cfg.verticalFlip,
    fillMode: cfg.fillMode,
    cval: cfg.cval,
  };
}

interface Prepared {
  images: Uint8Array[];
  labels: number[];
}

/** Whether a checkpoint belongs to this run (same method, backbone, size and labels). */
function usableCheckpoint(c: Checkpoint | null | undefined, args: { method: string; backbone: string | null; inputSize: number; labels: string[] }, log: LogFn): Checkpoint | null {
  if (!c) return null;
  const m = c.meta;
  const same =
    m?.format === 'graft-checkpoint' &&
    m.method === args.method &&
    m.backbone === args.backbone &&
    m.inputSize === args.inputSize &&
    JSON.stringify(m.labels) === JSON.stringify(args.labels);
  if (!same) {
    log({ checkpoint: { method: m?.method, backbone: m?.backbone, inputSize: m?.inputSize } }, 'checkpoint does not match this training run; starting over');
    return null;
  }
  return c;
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const log: LogFn = opts.log ?? (() => {});
  const cfg = opts.config;
  const labels = [...opts.labels];
  const numClasses = labels.length;
  const attempt = opts.attempt ?? 1;
  const signal = opts.signal;
  const emit = (e: TrainEvent) => opts.onEvent?.(e);
  if (numClasses < 2) throw new VisionError('TOO_FEW_CLASSES', `training needs at least two classes (got ${numClasses})`);
  const kind: LossKind = numClasses === 2 ? 'binary' : 'categorical';

  const backend = await initBackend({ log });
  throwIfAborted(signal);

  for (const [name, refs] of Object.entries(opts.splits)) {
    for (const r of refs) {
      if (!Number.isInteger(r.label) || r.label < 0 || r.label >= numClasses) {
        throw new VisionError('INVALID_LABEL', `image '${r.key}' in ${name} has label ${r.label}, outside 0..${numClasses - 1}`);
      }
    }
  }
  const splits = carveSplits(opts.splits, cfg.split, numClasses);
  if (splits.train.length === 0) throw new VisionError('EMPTY_TRAINING_SET', 'there are no training images');
  if (new Set(splits.train.map((r) => r.label)).size < 2) {
    throw new VisionError('TOO_FEW_CLASSES', 'the training images must cover at least two classes');
  }

  const method = cfg.method;
  const spec = method === 'scratch' ? null : getBackboneSpec(cfg.backbone);
  const size = cfg.inputSize ?? spec?.trainingInputSize ?? spec?.inputSize ?? SCRATCH_INPUT_SIZE;
  if (method === 'scratch' && size < 46) {
    throw new VisionError('INVALID_INPUT_SIZE', `the scratch convnet needs an input size of at least 46 (got ${size})`);
  }
  const preprocessing: Preprocessing = spec?.preprocessing ?? PREPROCESSING.unit;
  const augmentation = augmentationOptions(cfg.augmentation);
  const cachedMode = cfg.augmentation === false || cfg.augmentation.mode === 'cached';
  const copies = cfg.augmentation !== false && cachedMode ? cfg.augmentation.copies : 0;
  const backboneName = spec ? spec.name : null;
  const fineTuning = method === 'fine_tuning';
  const resume = usableCheckpoint(opts.resume, { method, backbone: backboneName, inputSize: size, labels }, log);
  const history: HistoryRow[] = resume ? resume.meta.history.map((r) => ({ ...r })) : [];
  const skipHead = !!resume && resume.meta.phase === 'fine_tuning';
  const patience = cfg.earlyStopping === false ? null : cfg.earlyStopping.patience;
  log(
    { method, backbone: backboneName, inputSize: size, backend, train: splits.train.length, validation: splits.validation.length, test: splits.test.length, carved: splits.carved, resumeFrom: resume ? { phase: resume.meta.phase, epoch: resume.meta.epoch } : null },
    'training started',
  );

  // Planned work, in units of "one image through the whole backbone".
  const nTrain = splits.train.length;
  const nVal = splits.validation.length;
  const nTest = splits.test.length;
  const nAll = nTrain + nVal + nTest;
  const headEpochs = cfg.featureExtraction.epochs;
  const ftEpochs = cfg.fineTuning.epochs;
  const work: Partial<Record<Phase, number>> =
    method === 'scratch'
      ? { preparing: nAll * 0.05, training_head: headEpochs * (nTrain + nVal) * 0.5, evaluating: nTest * 0.2 + 1, exporting: 1 }
      : {
          preparing: cachedMode ? 1 : nAll * 0.05,
          extracting: (cachedMode ? nTrain * (1 + copies) : 0) + nVal,
          training_head: skipHead ? 0 : headEpochs * (cachedMode ? (nTrain * (HEAD_SAMPLING === 'all' ? 1 + copies : 1) + nVal) * 0.03 : nTrain),
          // A fine-tuning step of the top block on one sample costs about 1.5 frozen passes of an image.
          fine_tuning: fineTuning ? ftEpochs * nTrain * (cachedMode ? 1.5 : 2.5) : 0,
          evaluating: nTest + 1,
          exporting: 2,
        };
  const progress = new ProgressTracker(work, emit);

  // --- preparing: decode every image once at the input size -------------------------------------------------
  progress.phase('preparing');
  const allRefs = [...splits.train, ...splits.validation, ...splits.test];
  // With cached features, the training images' features are computed as the images decode: decoding (sharp,
  // off this thread) overlaps with the frozen model's passes. Otherwise every image is decoded first.
  const overlap = method !== 'scratch' && cachedMode;
  const pending = decodeInOrder(allRefs.length, (i) => opts.readImage(allRefs[i]!.key), size, {
    signal,
    onProgress: overlap ? undefined : (done, total) => progress.update('preparing', done / total),
  });
  let skipped = 0;
  let trainSet!: Prepared;
  let valSet!: Prepared;
  let testSet!: Prepared;
  /** Waits for every image, then sorts them into the splits, leaving out (and logging) undecodable ones. */
  const settle = async () => {
    const decoded = await Promise.all(pending);
    const take = (refs: ImageRef[], offset: number): Prepared => {
      const out: Prepared = { images: [], labels: [] };
      refs.forEach((r, i) => {
        const d = decoded[offset + i]!;
        if (d instanceof Uint8Array) {
          out.images.push(d);
          out.labels.push(r.label);
        } else {
          skipped++;
          log({ key: r.key, err: d.message }, 'skipping an image that cannot be decoded');
        }
      });
      return out;
    };
    trainSet = take(splits.train, 0);
    valSet = take(splits.validation, nTrain);
    testSet = take(splits.test, nTrain + nVal);
    if (trainSet.images.length === 0) throw new VisionError('EMPTY_TRAINING_SET', 'none of the training images can be decoded');
  };
  if (!overlap) await settle();
  throwIfAborted(signal);

  const owned: {
    backbone: tf.LayersModel | null;
    head: Head | null;
    scratch: tf.LayersModel | null;
    frozen: FrozenModel[];
    replicas: GradientReplicas[];
  } = { backbone: null, head: null, scratch: null, frozen: [], replicas: [] };
  const optimizers: tf.Optimizer[] = [];
  try {
    let finalForward: Forward;
    let finalValidation: BatchSource | null = null;
    let classifier: tf.LayersModel;
    let testProbabilities: Float32Array[] | null = null;

    const checkpointer = (phase: HistoryRow['phase'], variables: tf.LayerVariable[]) => async (row: HistoryRow, state: PhaseState) => {
      emit({ type: 'epoch', row });
      log({ ...row }, `epoch ${row.epoch} of ${phase} done`);
      if (opts.onCheckpoint) {
        await opts.onCheckpoint(
          makeCheckpoint({ method, backbone: backboneName, inputSize: size, labels, phase, state, history, variables, current: await readWeights(variables) }),
        );
      }
    };
    const restore = (phase: HistoryRow['phase'], variables: tf.LayerVariable[]): PhaseState => {
      if (!resume || resume.meta.phase !== phase) return newPhaseState();
      const { current, best } = checkpointWeights(resume, variables);
      writeWeights(variables, current);
      log({ phase, epoch: resume.meta.epoch }, 'resuming from checkpoint');
      return checkpointState(resume, best);
    };
    const runPhase = async (
      phase: HistoryRow['phase'],
      p: { epochs: number; optimizer: 'rmsprop' | 'adam' | 'sgd'; learningRate: number },
      variables: tf.LayerVariable[],
      forward: Forward,
      trainSource: BatchSource,
      validation: BatchSource | null,
      extraLoss?: () => tf.Scalar | null,
      replicaSpec?: () => Promise<ReplicaSpec>,
    ) => {
      const state = restore(phase, variables);
      progress.phase(phase);
      const optimizer = makeOptimizer(p.optimizer, p.learningRate);
      optimizers.push(optimizer);
      // Heavy steps (convolutions) are shared with worker threads on backends that use one core.
      const threads = replicaSpec && SINGLE_THREADED_BACKENDS.has(backend) && !phaseDone(state, p.epochs) ? trainThreads() : 1;
      const replicas = threads > 1 ? await GradientReplicas.start(await replicaSpec!(), threads - 1, log) : null;
      if (replicas) owned.replicas.push(replicas);
      await fit({
        replicas,
        onReplicaFailure: () => log({ phase }, 'a training replica failed; training goes on in one thread'),
        phase,
        attempt,
        epochs: p.epochs,
        forward,
        variables,
        extraLoss,
        optimizer,
        loss: kind,
        train: trainSource,
        validation,
        patience: validation ? patience : null,
        state,
        history,
        signal,
        onBatch: (epoch, fraction) => progress.update(phase, (epoch + fraction) / p.epochs, { epoch: epoch + 1, epochs: p.epochs }),
        onEpoch: async (row, s) => {
          progress.update(phase, s.epoch / p.epochs, { epoch: row.epoch, epochs: p.epochs }, true);
          await checkpointer(phase, variables)(row, s);
        },
      });
      await replicas?.dispose();
      log({ phase, bestEpoch: state.bestEpoch, bestValLoss: state.bestValLoss, stopped: state.stopped }, `${phase} finished`);
    };

    if (method === 'scratch') {
      const model = buildScratchModel(size, numClasses, cfg.head.dropout, cfg.seed);
      owned.scratch = model;
      const forward: Forward = (xs, training) => model.apply(xs[0]!, { training }) as tf.Tensor;
      const source = (set: Prepared, aug: AugmentationOptions | null, batchSize: number) =>
        new ImageSource({ ...set, size, preprocessing, augmentation: aug, frozen: null, kind, numClasses, batchSize, seed: cfg.seed });
      const validation = valSet.images.length ? source(valSet, null, INFERENCE_BATCH) : null;
      const replicaSpec = async (): Promise<ReplicaSpec> => ({
        topology: model.toJSON(null, false) as object,
        weights: await readWeights(model.weights),
        head: null,
        loss: kind,
        numClasses,
        variables: variableRefs(model, [], model.trainableWeights),
        backend,
      });
      await runPhase('training_head', cfg.featureExtraction, model.trainableWeights, forward, source(trainSet, augmentation, cfg.batchSize), validation, undefined, replicaSpec);
      finalForward = forward;
      finalValidation = validation;
      classifier = model;
    } else {
      const backbone = await loadBackbone(spec!.name, opts.backbones, { inputSize: size });
      owned.backbone = backbone;
      throwIfAborted(signal);
      const featureShape = (backbone.outputs[0]!.shape as number[]).slice(1);
      const head = new Head(featureShape, numClasses, cfg.head, cfg.seed);
      owned.head = head;
      const fromLayer = cfg.fineTuning.fromLayer ?? spec!.topBlockStart;
      const parts: FineTuneParts | null = fineTuning ? prepareFineTuning(backbone, fromLayer) : null;
      const lowerShapes = parts ? parts.lower.outputs.map((t) => (t.shape as number[]).slice(1)) : [];
      const pooledShape = [head.pooledSize];
      const needHead = !skipHead;

      // The frozen part (the whole backbone, or the part below the fine-tuned block) on ONNX Runtime where it can.
      const base = await createFrozenModel(parts ? parts.lower : backbone, { log, what: parts ? `${spec!.name} below ${fromLayer}` : spec!.name });
      owned.frozen.push(base);
      // The top block as it is before fine-tuning, for the head's features computed from the lower part's outputs.
      const upper = parts && needHead && lowerShapes.length === 1 ? await createFrozenModel(parts.upper, { log, what: `${spec!.name} from ${fromLayer}` }) : null;
      if (upper) owned.frozen.push(upper);
      throwIfAborted(signal);

      /** Pooled head features of feature maps. */
      const pool = async (maps: Float32Array, n: number): Promise<Float32Array> => {
        if (!head.pool || cfg.head.pooling === 'flatten') return maps;
        return readAndDispose(tf.tidy(() => head.pooled(tf.tensor(maps, [n, ...featureShape]))));
      };
      /** Pooled head features from the lower part's outputs (through the top block before fine-tuning). */
      const headFromLower = async (lowers: Float32Array[], n: number): Promise<Float32Array> => {
        if (upper) return pool((await upper.run(lowers[0]!, n))[0]!, n);
        return readAndDispose(tf.tidy(() => head.pooled(applyUpper(parts!.upper, lowers.map((a, i) => tf.tensor(a, [n, ...lowerShapes[i]!]))))));
      };
      /** Pooled head features of network inputs. */
      const headFeatures: ArrayForward = async (input, n) => {
        const outs = await base.run(input, n, { transfer: true });
        return [parts ? await headFromLower(outs, n) : await pool(outs[0]!, n)];
      };
      /** What the trained part of fine-tuning takes: the lower part's outputs. */
      const lowerOutputs: ArrayForward = (input, n) => base.run(input, n, { transfer: true });
      const store = (shapes: number[][], batchSize: number, sampling: Sampling = 'all') =>
        new FeatureStore(shapes, kind, numClasses, batchSize, cfg.seed, sampling);

      // --- extracting: run the frozen part once per image (and augmented copy) -----------------------------
      progress.phase('extracting');
      const headTrain = needHead && cachedMode ? store([pooledShape], cfg.batchSize, HEAD_SAMPLING) : null;
      const lowerTrain = parts && cachedMode ? store(lowerShapes, cfg.batchSize, FINE_TUNING_SAMPLING) : null;
      const extractStarted = performance.now();
      let extractedCount = 0;
      const extract = async (
        images: PendingImage[],
        imageLabels: number[],
        nCopies: number,
        lower: FeatureStore | null,
        headStore: FeatureStore | null,
        offset: number,
        total: number,
      ) => {
        const stores = [lower, headStore].filter((s): s is FeatureStore => s !== null);
        if (!stores.length) return;
        const items: ExtractItem[] = [];
        images.forEach((_, i) => {
          for (let c = 0; c <= nCopies; c++) items.push({ image: i, copy: c, label: imageLabels[i]! });
        });
        extractedCount += await extractFeatures({
          images,
          items,
          size,
          preprocessing,
          augmentation,
          seed: cfg.seed,
          batchSize: INFERENCE_BATCH,
          stores,
          signal,
          forward: async (input, n) => {
            if (!parts) return headFeatures(input, n);
            const lowers = await lowerOutputs(input, n);
            const outs = lower ? [...lowers] : [];
            if (headStore) outs.push(await headFromLower(lowers, n));
            return outs;
          },
          onProgress: (done) => progress.update('extracting', (offset + done) / total),
        });
      };
      const trainItems = cachedMode ? nTrain * (1 + copies) : 0;
      const totalItems = trainItems + nVal;
      if (cachedMode) {
        const trainImages = pending.slice(0, nTrain);
        await extract(trainImages, splits.train.map((r) => r.label), copies, lowerTrain, headTrain, 0, totalItems);
      }
      if (overlap) await settle();
      const headVal = needHead && valSet.images.length ? store([pooledShape], INFERENCE_BATCH) : null;
      const lowerVal = parts && valSet.images.length ? store(lowerShapes, INFERENCE_BATCH) : null;
      await extract(valSet.images, valSet.labels, 0, lowerVal, headVal, trainItems, totalItems);
      const extractSeconds = (performance.now() - extractStarted) / 1000;
      if (extractedCount) {
        log(
          { images: extractedCount, seconds: +extractSeconds.toFixed(1), imagesPerSecond: +(extractedCount / extractSeconds).toFixed(1), engine: base.engine },
          'features extracted',
        );
      }

      // --- training_head: the new head on frozen features ------------------------------------------------------
      const headForward: Forward = (xs, training) => head.classify(xs[0]!, training);
      if (needHead) {
        const headSource: BatchSource =
          headTrain ??
          new ImageSource({ ...trainSet, size, preprocessing, augmentation, frozen: { forward: headFeatures, shapes: [pooledShape] }, kind, numClasses, batchSize: cfg.batchSize, seed: cfg.seed });
        await runPhase('training_head', cfg.featureExtraction, head.trainableWeights, headForward, headSource, headVal);
      }
      finalForward = headForward;
      finalValidation = headVal;
      // The top block's copy from before fine-tuning is not needed any more.
      if (upper) await upper.dispose();

      // --- fine_tuning: top block + head on the cached outputs of the frozen part ---------------------------------
      if (parts) {
        const forward = fineTuneForward(parts, head);
        const ftSource: BatchSource =
          lowerTrain ??
          new ImageSource({ ...trainSet, size, preprocessing, augmentation, frozen: { forward: lowerOutputs, shapes: lowerShapes }, kind, numClasses, batchSize: cfg.batchSize, seed: cfg.seed });
        const variables = [...parts.blockWeights, ...head.trainableWeights];
        const replicaSpec = async (): Promise<ReplicaSpec> => ({
          topology: parts.upper.toJSON(null, false) as object,
          weights: await readWeights(parts.upper.weights),
          head: { featureShape, numClasses, config: cfg.head, seed: cfg.seed },
          loss: kind,
          numClasses,
          variables: variableRefs(parts.upper, head.layers, variables),
          backend,
        });
        await runPhase('fine_tuning', cfg.fineTuning, variables, forward, ftSource, lowerVal, parts.regularization, replicaSpec);
        finalForward = forward;
        finalValidation = lowerVal;
      }

      // --- evaluating: the test images through the frozen part, then the trained part ----------------------------
      progress.phase('evaluating');
      if (testSet.images.length) {
        const testStore = store(parts ? lowerShapes : [pooledShape], INFERENCE_BATCH);
        await extractFeatures({
          images: testSet.images,
          items: testSet.images.map((_, i) => ({ image: i, copy: 0, label: testSet.labels[i]! })),
          size,
          preprocessing,
          augmentation: null,
          seed: cfg.seed,
          batchSize: INFERENCE_BATCH,
          stores: [testStore],
          signal,
          forward: parts ? lowerOutputs : headFeatures,
          onProgress: (done) => progress.update('evaluating', (0.9 * done) / testSet.images.length),
        });
        testProbabilities = await sourceProbabilities(finalForward, testStore, numClasses, signal);
      }
      const out = head.applySymbolic(backbone.outputs[0]!);
      classifier = tf.model({ inputs: backbone.inputs, outputs: out, name: 'graft_classifier' });
    }

    // --- evaluating ----------------------------------------------------------------------------------------------
    if (progress.phaseNow !== 'evaluating') progress.phase('evaluating');
    const validation = finalValidation ? await evaluateSource(finalForward, finalValidation, kind, signal) : null;
    let test: TestMetrics | null = null;
    if (testSet.images.length) {
      testProbabilities ??= await predictProbabilities(classifier, testSet.images, size, preprocessing, numClasses, signal, (done) =>
        progress.update('evaluating', done / testSet.images.length),
      );
      test = classificationMetrics(testProbabilities, testSet.labels, labels);
    }
    log({ validation, test: test ? { loss: test.loss, accuracy: test.accuracy } : null }, 'evaluated');

    // --- exporting -----------------------------------------------------------------------------------------------
    progress.phase('exporting');
    const graft = makeManifest({
      labels,
      inputSize: size,
      backbone: backboneName,
      method,
      preprocessing,
      outputActivation: kind === 'binary' ? 'sigmoid' : 'softmax',
    });
    const artifacts = await exportClassifier(classifier, graft);
    progress.update('exporting', 1, {}, true);
    return {
      artifacts,
      history,
      test,
      validation,
      labels,
      graft,
      counts: { train: trainSet.images.length, validation: valSet.images.length, test: testSet.images.length, skipped },
    };
  } catch (err) {
    if (signal?.aborted && !(err instanceof AbortError)) throw new AbortError();
    throw err;
  } finally {
    await Promise.all(owned.frozen.map((f) => f.dispose().catch(() => {})));
    await Promise.all(owned.replicas.map((r) => r.dispose().catch(() => {})));
    for (const o of optimizers) o.dispose();
    owned.head?.dispose();
    disposeWeights(owned.backbone, owned.scratch);
  }
}

/** A tensor's values; the tensor is disposed. */
async function readAndDispose(t: tf.Tensor): Promise<Float32Array> {
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

/** Class probabilities of forward over every sample of a source (in order), in inference mode. */
async function sourceProbabilities(forward: Forward, source: BatchSource, numClasses: number, signal?: AbortSignal): Promise<Float32Array[]> {
  const result: Float32Array[] = [];
  for await (const batch of source.batches(0, false, signal)) {
    try {
      const data = await readAndDispose(tf.tidy(() => forward(batch.xs, false)));
      result.push(...toClassProbabilities(data, batch.size, numClasses));
    } finally {
      disposeBatch(batch);
    }
  }
  return result;
}

/** Class probabilities of decoded images (size x size x 3 RGB) through a classifier, in batches. */
export async function predictProbabilities(
  model: tf.LayersModel,
  images: Uint8Array[],
  size: number,
  preprocessing: Preprocessing,
  numClasses: number,
  signal?: AbortSignal,
  onProgress?: (done: number) => void,
): Promise<Float32Array[]> {
  const per = size * size * 3;
  const result: Float32Array[] = [];
  for (let start = 0; start < images.length; start += INFERENCE_BATCH) {
    throwIfAborted(signal);
    const batch = images.slice(start, start + INFERENCE_BATCH);
    const buf = new Float32Array(batch.length * per);
    batch.forEach((img, j) => normalizePixels(img, preprocessing, buf.subarray(j * per, (j + 1) * per)));
    const data = await readAndDispose(tf.tidy(() => model.predict(tf.tensor4d(buf, [batch.length, size, size, 3])) as tf.Tensor));
    result.push(...toClassProbabilities(data, batch.length, numClasses));
    onProgress?.(start + batch.length);
    await new Promise<void>((r) => setImmediate(r));
  }
  return result;
}

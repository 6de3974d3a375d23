// The training child process: one per job attempt, so the worker's event loop (and its BullMQ lock
// renewal) never waits on training. Reads the dataset from S3, trains, writes checkpoints each epoch,
// and publishes the model's artifacts. Talks to its parent only through IPC messages.
import { backboneSource, findDependencyUnavailable, keys, Storage } from '@graft/storage';
import { LABEL_ISSUES_FILE, PREDICTIONS_FILE, type EvaluatedImages, type LabelIssuesFile } from '@graft/queue';
import { initBackend, isPermanent, train, type ImagePrediction, type ImageRef, type LabelIssues, type TrainEvent, type TrainResult } from '@graft/vision';
import { isErrorCode, type DatasetIndex, type DatasetManifest, type ErrorCode } from '@graft/contract';
import { createLogger } from '@graft/config';
import { setHeapGrowth } from '@graft/config/heap';
import { exportOnnx, readBank, UnsupportedLayerError, withOodOutput, type Int8Decision, type OodManifest } from '@graft/inference';
import type { ChildMessage, ParentMessage, StartMessage } from './messages';
import { modelIdFor } from './model-id';
import { publishModel } from './publish';
import { jobCheckpoints } from './checkpoint-store';
import { int8Model, int8Splits } from './int8';

const send = (m: ChildMessage) => process.send?.(m);

/** A dataset that cannot be trained on as it is stored: retrying fails the same way. */
class DatasetError extends Error {
  readonly permanent = true;
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DatasetError';
  }
}

const controller = new AbortController();
let abortReason: 'cancelled' | 'shutdown' | undefined;

process.on('message', (m: ParentMessage) => {
  if (m.type === 'start') void run(m);
  if (m.type === 'abort') {
    abortReason = m.reason;
    controller.abort(new Error(m.reason));
  }
});
process.on('disconnect', () => {
  // The parent is gone: stop, the job will be picked up again from its checkpoint.
  controller.abort(new Error('parent exited'));
  setTimeout(() => process.exit(1), 2_000).unref();
});

/**
 * The trained model as ONNX (model.onnx among the artifacts, so it can be taken elsewhere), or null, logged, where
 * the converter cannot express it: the model is still published without it.
 */
function toOnnx(files: Record<string, Uint8Array>, log: { warn(obj: object, msg: string): void }): Uint8Array | null {
  try {
    const modelJson = JSON.parse(Buffer.from(files['model.json']!).toString('utf8'));
    const paths: string[] = (modelJson.weightsManifest ?? []).flatMap((g: { paths: string[] }) => g.paths);
    const weights = Buffer.concat(paths.map((p) => files[p] ?? new Uint8Array(0)));
    // With an out-of-distribution bank the graph also outputs the features and their dot products with it.
    const ood = JSON.parse(Buffer.from(files['graft.json']!).toString('utf8')).outOfDistribution as OodManifest | null;
    const bank = ood && files[ood.bankFile];
    const model = ood && bank ? withOodOutput(modelJson, weights, ood, readBank(bank, ood)) : { modelJson, weights };
    return exportOnnx(model.modelJson, model.weights);
  } catch (err) {
    const unsupported = err instanceof UnsupportedLayerError;
    log.warn(
      { err: (err as Error).message, layer: unsupported ? err.layerName : undefined },
      unsupported ? 'model.onnx left out: a layer has no ONNX equivalent' : 'model.onnx left out: the ONNX export failed',
    );
    return null;
  }
}

type IndexedImage = DatasetIndex['images'][number];

/** The dataset's images by key: how the reports name an image the engine knows by its key. */
function imagesByKey(index: DatasetIndex): (key: string) => { imageId: string | null; path: string | null; split: IndexedImage['split'] } {
  const byKey = new Map(index.images.map((im) => [im.key, im]));
  return (key) => {
    const im = byKey.get(key);
    return { imageId: im?.id ?? null, path: im?.path ?? null, split: im?.split ?? 'train' };
  };
}

/** The engine's per-image results with label names, each image named by its id and archive path. */
function imagePredictions(p: TrainResult['predictions'], labels: string[], index: DatasetIndex): EvaluatedImages {
  const image = imagesByKey(index);
  const named = (rows: ImagePrediction[] | null) =>
    rows?.map((r) => {
      const { imageId, path } = image(r.key);
      return { imageId, path, label: labels[r.label]!, predicted: labels[r.predicted]!, probabilities: r.probabilities };
    }) ?? null;
  return { labels, validation: named(p.validation), test: named(p.test) };
}

/** The engine's likely label errors with label names, each image named as in the dataset's health report. */
function labelIssuesFile(issues: LabelIssues, labels: string[], index: DatasetIndex): LabelIssuesFile {
  if (!issues.available) return { available: false, reason: issues.reason };
  const image = imagesByKey(index);
  return {
    available: true,
    labels,
    method: { name: 'confident_learning', folds: issues.folds },
    scored: issues.scored,
    seconds: +issues.seconds.toFixed(3),
    items: issues.items.map((it) => ({
      ...image(it.key),
      label: labels[it.label]!,
      suggestedLabel: labels[it.suggested]!,
      score: +it.score.toFixed(6),
    })),
  };
}

type Log = ReturnType<typeof createLogger>;
type Splits = Record<'train' | 'validation' | 'test', ImageRef[]>;

/** Object storage whose outages training waits through (GRAFT_OUTAGE_TOLERANCE) wherever they come; an abort ends the wait. */
function patientStorage(config: StartMessage['config'], log: Log): Storage {
  let waitingSince: number | null = null;
  return new Storage(config.s3).withPatience({
    toleranceMs: config.outageToleranceMs,
    signal: controller.signal,
    onWaiting: ({ downMs, err }) => {
      if (waitingSince !== null) return;
      waitingSince = Date.now() - downMs;
      log.warn({ err: (err as Error)?.message, toleranceMs: config.outageToleranceMs }, 'object storage is unreachable: training waits for it');
    },
    onBack: ({ downMs }) => {
      if (waitingSince === null) return;
      waitingSince = null;
      log.info({ downMs }, 'object storage is back: training goes on');
    },
  });
}

/**
 * The job's dataset from storage: its index, its classes (as labels) and its images by split, leaked images left
 * out where the config asks, near-copies tagged with their group (a validation split carved out of train keeps each
 * group whole). Throws a DatasetError where the dataset is gone, incomplete or has fewer than two training classes.
 */
async function loadDataset(
  storage: Storage,
  payload: StartMessage['payload'],
  log: Log,
): Promise<{ index: DatasetIndex; labels: string[]; splits: Splits }> {
  const manifest = await storage.getJsonOrNull<DatasetManifest>(payload.manifestKey);
  if (!manifest) throw new DatasetError('DATASET_NOT_FOUND', `dataset '${payload.datasetId}' no longer exists; upload it again and start a new job`);
  const index = await storage.getJsonOrNull<DatasetIndex>(keys.datasetIndex(payload.tenant, payload.datasetId));
  if (!index) throw new DatasetError('DATASET_CORRUPT', `dataset '${payload.datasetId}' is incomplete in storage (its image index is missing); upload it again`);
  const labels = [...manifest.classes];
  const labelOf = new Map(labels.map((l, i) => [l, i]));
  const leaked = new Set(payload.config.dropLeaked ? (index.leakedImageIds ?? []) : []);
  const groupOf = new Map((index.nearDuplicateGroups ?? []).flatMap((ids) => ids.map((id) => [id, ids[0]!] as const)));
  const splits: Splits = { train: [], validation: [], test: [] };
  let droppedLeaked = 0;
  for (const im of index.images) {
    const label = labelOf.get(im.label);
    if (label === undefined) continue;
    if (im.id !== undefined && leaked.has(im.id)) {
      droppedLeaked++;
      continue;
    }
    const group = im.id === undefined ? undefined : groupOf.get(im.id);
    splits[im.split].push(group === undefined ? { key: im.key, label } : { key: im.key, label, group });
  }
  if (payload.config.dropLeaked) log.info({ dropped: droppedLeaked }, 'left out leaked validation and test images');
  send({ type: 'dataset', dropped: { leaked: droppedLeaked } });
  if (new Set(splits.train.map((s) => s.label)).size < 2) {
    throw new DatasetError('TOO_FEW_CLASSES', 'the training split needs images of at least two classes');
  }
  return { index, labels, splits };
}

/**
 * Publishes what training made as the job's model: its files, model.onnx where the converter can express it,
 * model.int8.onnx where the int8 check keeps it (graft.json says why either way), metrics.json and the per-image
 * predictions. Returns the model's id.
 */
async function publishTrained(
  storage: Storage,
  { payload, config }: StartMessage,
  result: TrainResult,
  dataset: { index: DatasetIndex; splits: Splits },
  log: Log,
): Promise<string> {
  const modelId = modelIdFor(payload.jobId);
  const artifacts: Record<string, Uint8Array | string> = { ...result.artifacts };
  const onnx = toOnnx(result.artifacts, log);
  if (onnx) artifacts['model.onnx'] = onnx;
  let int8: Int8Decision | null = null;
  if (onnx && config.int8.enabled) {
    const started = performance.now();
    const q = await int8Model(onnx, result.artifacts['graft.json']!, int8Splits(dataset.splits, result), (key) => storage.getBuffer(key), config.int8);
    int8 = q.decision;
    if (q.model) artifacts['model.int8.onnx'] = q.model;
    const graftJson = JSON.parse(Buffer.from(result.artifacts['graft.json']!).toString('utf8'));
    artifacts['graft.json'] = JSON.stringify({ ...graftJson, int8 }, null, 2);
    // int8.seconds says where the check's time went; secondsWithReads adds reading its images from storage.
    log.info({ ...int8, secondsWithReads: +((performance.now() - started) / 1000).toFixed(1) }, int8.used ? 'int8 model kept' : 'int8 model left out: fp32 serves');
  }
  const metrics = { test: result.test, validation: result.validation, history: result.history, refit: result.refit, ...(int8 ? { int8 } : {}) };
  artifacts['metrics.json'] = JSON.stringify(metrics, null, 2);
  artifacts[PREDICTIONS_FILE] = JSON.stringify(imagePredictions(result.predictions, result.labels, dataset.index));
  await publishModel(storage, payload.tenant, artifacts, {
    id: modelId,
    jobId: payload.jobId,
    datasetId: payload.datasetId,
    labels: result.labels,
    backbone: payload.config.method === 'scratch' ? null : payload.config.backbone,
    method: payload.config.method,
    inputSize: result.graft.inputSize,
    metrics: { test: result.test, validation: result.validation },
    int8: int8 && { used: int8.used, reason: int8.reason, agreement: int8.agreement, accuracyFp32: int8.accuracyFp32, accuracyInt8: int8.accuracyInt8, images: int8.images },
    createdAt: new Date().toISOString(),
  });
  return modelId;
}

async function run(start: StartMessage) {
  const { payload, attempt, config } = start;
  setHeapGrowth(config.heapGrowthPercent);
  const log = createLogger(config.logLevel, 'graft-train').child({ jobId: payload.jobId, attempt });
  const storage = patientStorage(config, log);
  try {
    const backend = await initBackend({
      prefer: config.training.tfBackend ?? undefined,
      syncReads: config.testing.syncReads,
      log: (obj, msg) => log.info(obj, msg),
    });
    send({ type: 'backend', backend });
    const dataset = await loadDataset(storage, payload, log);
    const { index, labels, splits } = dataset;

    const ckptPrefix = keys.checkpoint(payload.tenant, payload.jobId);
    const checkpoints = jobCheckpoints(storage, ckptPrefix, log);
    const resume = await checkpoints.load();
    if (resume) log.info({ phase: resume.meta.phase, epoch: resume.meta.epoch }, 'resuming from checkpoint');
    // The job's history becomes what this run starts from: the checkpoint's rows, or none (rows of an earlier run
    // whose checkpoint was never written are trained again).
    send({ type: 'resumed', history: resume?.meta.history ?? [], phase: resume?.meta.phase ?? 'preparing', epoch: resume?.meta.epoch ?? 0 });

    const labelIssuesKey = keys.jobArtifact(payload.tenant, payload.jobId, LABEL_ISSUES_FILE);
    const saveLabelIssues = (issues: LabelIssues) =>
      storage.putVerified(labelIssuesKey, JSON.stringify(labelIssuesFile(issues, labels, index)), 'application/json');
    const result = await train({
      // Trained as the job record shows it: resolved when the job was accepted, never filled in again here.
      config: payload.config,
      labels,
      splits,
      readImage: (key) => storage.getBuffer(key),
      backbones: backboneSource(config.backbones, storage),
      signal: controller.signal,
      attempt,
      resume,
      onEvent: (event: TrainEvent) => send({ type: 'event', event }),
      onCheckpoint: (c) => checkpoints.save(c),
      onLabelIssues: saveLabelIssues,
      log: (obj, msg) => log.info(obj, msg),
      threads: config.training.threads,
      frozenEngine: config.training.frozenEngine,
      trainEngine: config.training.trainEngine,
      frozenPrecision: config.training.frozenPrecision,
    });

    // A run resumed in fine-tuning keeps the label issues an earlier attempt stored.
    if (!result.labelIssues.available && !result.labelIssues.resumed) await saveLabelIssues(result.labelIssues);
    const modelId = await publishTrained(storage, start, result, dataset, log);
    await jobCheckpoints(storage.withPatience({ toleranceMs: 0 }), ckptPrefix).drop().catch(() => {});
    send({
      type: 'done',
      model: { modelId, test: result.test, validation: result.validation, refit: result.refit, backend },
    });
  } catch (caught: any) {
    const err = findDependencyUnavailable(caught) ?? caught;
    const aborted = controller.signal.aborted ? abortReason ?? 'shutdown' : undefined;
    // Error classes state whether they are permanent (the engine's, storage's outage past its tolerance); others are not.
    const permanent = !aborted && isPermanent(err);
    log.warn({ err: err?.message, aborted, permanent }, 'training stopped');
    send({
      type: 'error',
      code: isErrorCode(err?.code) ? err.code : aborted ? 'ABORTED' : 'TRAINING_FAILED',
      message: String(err?.message ?? err),
      permanent,
      aborted,
    });
  } finally {
    storage.close();
    setTimeout(() => process.exit(0), 100).unref();
  }
}

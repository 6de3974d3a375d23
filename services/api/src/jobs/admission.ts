// Whether a training job may be queued: the tenant's queue quota, and the job's estimated memory and time
// against the per-job limits. Each refusal is a 4xx that names the limit and the field to change.
import type { GraftConfig } from '@graft/config';
import type { TrainingConfig } from '@graft/contract';
import type { BackboneDescription } from '@graft/vision';
import { ApiError } from '../errors';
import { estimateJob, formatBytes, type BaseShape, type DatasetCounts, type JobEstimate } from './estimate';

/** The config field that most changes each part of the memory estimate. */
const FIELD_OF_PART: Record<string, string> = {
  images: 'config.inputSize',
  batch: 'config.batchSize',
  sessions: 'config.inputSize',
  features: 'config.augmentation.copies',
  weights: 'config.head.units',
  runtime: 'config',
};

export function datasetCounts(splits: Record<string, Record<string, number>>): DatasetCounts {
  const sum = (s?: Record<string, number>) => Object.values(s ?? {}).reduce((a, b) => a + b, 0);
  const classes = new Set(Object.values(splits).flatMap((s) => Object.keys(s)));
  return { train: sum(splits.train), validation: sum(splits.validation), test: sum(splits.test), classes: classes.size };
}

/**
 * The base's feature shape at `size`, from its description at its own input size: the features of a fully
 * convolutional base shrink the input by a fixed stride. Without a description (weights unreachable), a
 * conservative shape: stride 32 and 1024 channels.
 */
export function baseShapeAt(description: BackboneDescription | null, size: number): BaseShape {
  if (!description || description.featureShape.length !== 3) {
    const side = Math.ceil(size / 32);
    return { inputSize: size, featureShape: [side, side, 1024], params: 4_300_000 };
  }
  const [h0, w0, c] = description.featureShape as [number, number, number];
  const stride = description.inputSize / h0;
  const ratio = w0 / h0;
  const h = Math.max(1, Math.ceil(size / stride));
  return { inputSize: size, featureShape: [h, Math.max(1, Math.round(h * ratio)), c], params: description.params };
}

export function checkQuota(active: number, limits: GraftConfig['jobs']): void {
  if (active >= limits.tenantQueued) {
    throw new ApiError(
      'TENANT_QUOTA_EXCEEDED',
      `this tenant already has ${active} queued or running jobs, the most allowed (GRAFT_MAX_TENANT_JOBS); wait for one to finish or cancel one`,
      { limit: limits.tenantQueued, active },
    );
  }
}

/** The job's estimate, or a 400 INVALID_CONFIG naming the field that weighs most where it is over a limit. */
export function admitJob(cfg: TrainingConfig, counts: DatasetCounts, base: BaseShape | null, size: number, limits: GraftConfig['jobs']): JobEstimate {
  const estimate = estimateJob(cfg, counts, base, size);
  if (estimate.memoryBytes > limits.maxMemoryBytes) {
    const parts = Object.entries(estimate.memory).sort((a, b) => b[1] - a[1]);
    const field = FIELD_OF_PART[parts[0]![0]] ?? 'config';
    const breakdown = parts.map(([k, v]) => `${k} ${formatBytes(v)}`).join(', ');
    throw new ApiError(
      'INVALID_CONFIG',
      `${field}: the job would need about ${formatBytes(estimate.memoryBytes)} of memory (${breakdown}), over the ${formatBytes(limits.maxMemoryBytes)} limit (GRAFT_MAX_JOB_MEMORY_BYTES)`,
      { field, estimatedMemoryBytes: Math.round(estimate.memoryBytes), limit: limits.maxMemoryBytes },
    );
  }
  if (estimate.seconds > limits.maxSeconds) {
    const field = cfg.method === 'fine_tuning' ? 'config.fineTuning.epochs' : 'config.featureExtraction.epochs';
    throw new ApiError(
      'INVALID_CONFIG',
      `${field}: the job would take at least ${Math.round(estimate.seconds / 60)} min, over the ${Math.round(limits.maxSeconds / 60)} min limit (GRAFT_MAX_JOB_SECONDS)`,
      { field, estimatedSeconds: Math.round(estimate.seconds), limit: limits.maxSeconds },
    );
  }
  return estimate;
}

// The API's shapes, as the dashboard reads them (see services/api/src/routes/*.ts and shared/api.md).

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export const TERMINAL: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

export interface HistoryRow {
  phase: string;
  epoch: number;
  attempt: number;
  loss: number;
  accuracy: number;
  valLoss: number | null;
  valAccuracy: number | null;
  seconds: number;
}

export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** Evaluation of one split; a validation split evaluated during training may hold loss and accuracy only. */
export interface EvalMetrics {
  loss: number;
  accuracy: number;
  confusionMatrix?: number[][];
  labels?: string[];
  perClass?: Record<string, ClassMetrics>;
  /** Expected calibration error before and after the model's temperature, with the reliability diagrams. */
  calibration?: Calibration;
}

export interface ReliabilityBin {
  from: number;
  to: number;
  count: number;
  confidence: number | null;
  accuracy: number | null;
}

export interface Calibration {
  temperature: number;
  ece: number;
  calibratedEce: number;
  reliability: ReliabilityBin[];
  calibratedReliability: ReliabilityBin[];
}

export type DetailedMetrics = Required<Omit<EvalMetrics, 'calibration'>> & Pick<EvalMetrics, 'calibration'>;

/** One evaluated image (GET /v1/jobs/:id/predictions). */
export interface EvaluatedImage {
  /** The image's id in the dataset; null for datasets stored without ids. */
  imageId: string | null;
  path: string | null;
  label: string;
  predicted: string;
  probabilities: number[];
}

/** A likely label error (GET /v1/jobs/:id/label-issues). */
export interface LabelIssue {
  imageId: string | null;
  path: string | null;
  split: string;
  label: string;
  suggestedLabel: string;
  score: number;
}

export interface LabelIssues {
  jobId: string;
  datasetId: string;
  labels: string[];
  method: { name: string; folds: number };
  scored: { train: number; validation: number };
  total: number;
  items: LabelIssue[];
}

/** Grad-CAM of one image (POST /v1/models/:id/explain). */
export interface Explanation {
  label: string;
  probability: number;
  heatmap: { width: number; height: number; values: number[] };
  overlay: string;
}

export interface Job {
  id: string;
  datasetId: string;
  state: JobState;
  phase: string | null;
  progress: number;
  epoch: number | null;
  epochs: number | null;
  etaSeconds: number | null;
  config: Record<string, any>;
  history: HistoryRow[];
  test: EvalMetrics | null;
  validation: EvalMetrics | null;
  modelId: string | null;
  error: { code: string; message: string } | null;
  attempts: number;
  backend: string | null;
  /** Images the job left out: `leaked` with config.dropLeaked. */
  dropped?: { leaked: number } | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Dataset {
  id: string;
  name: string;
  status: string;
  classes: string[];
  splits: Record<string, Record<string, number>>;
  imageCount: number;
  bytes: number;
  rejected: { path: string; reason: string }[];
  duplicates?: number;
  warnings: string[];
  health?: {
    images: number;
    nearDuplicateGroups: number;
    nearDuplicateImages: number;
    leakagePairs: number;
    leakedImages: number;
    exactCopies: number;
    tinyImages: number;
    extremeAspectImages: number;
    smallClasses: number;
  };
  createdAt: string;
}

export interface Thumbnail {
  imageId?: string;
  path?: string;
  class: string;
  split: string;
  width: number;
  height: number;
  image: string;
}

export interface Model {
  id: string;
  jobId: string;
  datasetId?: string;
  labels: string[];
  backbone: string | null;
  method?: string;
  inputSize: number;
  metrics: { test?: EvalMetrics | null; validation?: EvalMetrics | null } & Record<string, unknown>;
  createdAt: string;
}

export interface Backbone {
  name: string;
  inputSize: number;
  /** The input size training uses when a config gives none. */
  trainingInputSize?: number;
  params: number | null;
  featureShape: number[] | null;
  weights?: { available: boolean; source?: string };
}

export interface Prediction {
  label: string;
  probability: number;
}

export interface PredictResponse {
  modelId: string;
  results: { predictions: Prediction[]; outOfDistribution: { score: number; flagged: boolean } | null }[];
  timing: { totalMs: number };
}

export interface List<T> {
  items: T[];
  total: number;
}

/** An image as the health report names it (see GET /v1/datasets/:id/health). */
export interface ImageRef {
  imageId: string;
  path: string;
  split: string;
  label: string;
  width: number;
  height: number;
}

export interface DatasetHealth {
  datasetId: string;
  summary: NonNullable<Dataset['health']>;
  findings: { kind: string; message: string }[];
  classBalance: { counts: Record<string, Record<string, number>>; imbalanceRatio: number; smallClasses: { class: string; count: number; othersMedian: number }[] };
  nearDuplicates: { split: string; similarity: number; mixedLabels: boolean; images: ImageRef[] }[];
  leakage: { similarity: number; distance: number; sameLabel: boolean; images: [ImageRef, ImageRef] }[];
  exactCopies: { path: string; split: string; label: string; kept: ImageRef }[];
  tinyImages: ImageRef[];
  extremeAspectImages: (ImageRef & { aspect: number })[];
  seconds: number;
}

// Training jobs: the record the API serves, its history rows and evaluation, and the bodies of the job routes.
import { Type, type Static } from '@sinclair/typebox';
import { ID_PATTERN, Nullable, Page, Split } from './common';
import { JOB_PHASES, JOB_STATES, TRAINING_PHASES } from './job-states';
import { ResolvedTrainingConfigSchema, TrainingConfigSchema } from './training-config';

export const JobStateSchema = Type.Union(JOB_STATES.map((s) => Type.Literal(s)));

/** One finished epoch. `attempt`: which attempt of the job ran it (a resumed job keeps its earlier rows). */
export const HistoryRowSchema = Type.Object(
  {
    phase: Type.Union(TRAINING_PHASES.map((p) => Type.Literal(p))),
    epoch: Type.Integer({ minimum: 1 }),
    attempt: Type.Integer({ minimum: 1 }),
    loss: Type.Number(),
    accuracy: Type.Number(),
    valLoss: Nullable(Type.Number()),
    valAccuracy: Nullable(Type.Number()),
    seconds: Type.Number(),
  },
  { title: 'HistoryRow' },
);
export type HistoryRow = Static<typeof HistoryRowSchema>;

/** The row of a phase's epoch of lowest validation loss (the first of equals); null where no row of it has one. */
export function bestRow(history: readonly HistoryRow[], phase: HistoryRow['phase']): HistoryRow | null {
  let row: HistoryRow | null = null;
  for (const r of history) {
    if (r.phase === phase && r.valLoss !== null && Number.isFinite(r.valLoss) && (!row || r.valLoss < row.valLoss!)) row = r;
  }
  return row;
}

/**
 * The epoch whose weights a model kept: the head's (or the scratch network's) epoch of lowest validation loss, or
 * fine-tuning's where it validated lower than the head's best (fine-tuning has to beat the head; where none of its
 * epochs did, the model stays as the head left it). Null where no epoch was validated.
 */
export function keptRow(history: readonly HistoryRow[]): HistoryRow | null {
  const head = bestRow(history, 'training_head');
  const fineTuning = bestRow(history, 'fine_tuning');
  return fineTuning && (!head || fineTuning.valLoss! < head.valLoss!) ? fineTuning : head;
}

export const ClassMetricsSchema = Type.Object({ precision: Type.Number(), recall: Type.Number(), f1: Type.Number(), support: Type.Integer() }, { title: 'ClassMetrics' });
export type ClassMetrics = Static<typeof ClassMetricsSchema>;

export const ReliabilityBinSchema = Type.Object(
  {
    from: Type.Number(),
    to: Type.Number(),
    /** Images whose top probability falls in the bin. */
    count: Type.Integer(),
    /** Their mean top probability (null for an empty bin). */
    confidence: Nullable(Type.Number()),
    /** The share of them classified correctly (null for an empty bin). */
    accuracy: Nullable(Type.Number()),
  },
  { title: 'ReliabilityBin' },
);
export type ReliabilityBin = Static<typeof ReliabilityBinSchema>;

/** Calibration of a split's predictions before and after the temperature fitted on validation. */
export const CalibrationSchema = Type.Object(
  {
    temperature: Type.Number(),
    ece: Type.Number({ description: 'expected calibration error of the model\'s own probabilities' }),
    calibratedEce: Type.Number({ description: 'expected calibration error of the calibrated probabilities' }),
    calibratedLoss: Type.Number({ description: 'mean negative log-likelihood of the calibrated probabilities' }),
    reliability: Type.Array(ReliabilityBinSchema),
    calibratedReliability: Type.Array(ReliabilityBinSchema),
  },
  { title: 'Calibration' },
);
export type Calibration = Static<typeof CalibrationSchema>;

/** Evaluation of one split after training (the validation of jobs trained before it was detailed: loss and accuracy only). */
export const EvalMetricsSchema = Type.Object(
  {
    loss: Type.Number(),
    accuracy: Type.Number(),
    confusionMatrix: Type.Optional(Type.Array(Type.Array(Type.Integer()), { description: 'rows: true label, columns: predicted, in `labels` order' })),
    labels: Type.Optional(Type.Array(Type.String())),
    perClass: Type.Optional(Type.Record(Type.String(), ClassMetricsSchema)),
    calibration: Type.Optional(CalibrationSchema),
  },
  { title: 'EvalMetrics' },
);
export type EvalMetrics = Static<typeof EvalMetricsSchema>;
/** An evaluation with its confusion matrix and per-class numbers, as training makes it today. */
export type DetailedMetrics = EvalMetrics & Required<Pick<EvalMetrics, 'confusionMatrix' | 'labels' | 'perClass'>>;

export const JobErrorSchema = Type.Object({ code: Type.String({ description: 'a code of the error catalogue' }), message: Type.String() });

/** What a job's refit trained (config.refit): the model served is that one; `validation` is the model chosen before it. */
export const RefitSchema = Type.Object(
  {
    headEpochs: Type.Integer({ minimum: 1, description: "the head's epochs, as early stopping chose them" }),
    fineTuningEpochs: Type.Integer({ minimum: 0, description: "fine-tuning's epochs after the head's (0: the head's model was chosen)" }),
    images: Type.Integer({ minimum: 0, description: 'training and validation images trained on, each with its augmented copies' }),
  },
  { title: 'Refit' },
);
export type Refit = Static<typeof RefitSchema>;

/** A job as the API serves it. */
export const JobSchema = Type.Object(
  {
    id: Type.String({ pattern: ID_PATTERN.job }),
    datasetId: Type.String({ pattern: ID_PATTERN.ds }),
    state: JobStateSchema,
    phase: Nullable(Type.Union(JOB_PHASES.map((p) => Type.Literal(p)))),
    progress: Type.Number({ minimum: 0, maximum: 1 }),
    epoch: Nullable(Type.Integer()),
    epochs: Nullable(Type.Integer()),
    etaSeconds: Nullable(Type.Number()),
    config: ResolvedTrainingConfigSchema,
    history: Type.Array(HistoryRowSchema),
    test: Nullable(EvalMetricsSchema),
    validation: Nullable(EvalMetricsSchema),
    modelId: Nullable(Type.String({ pattern: ID_PATTERN.mdl })),
    error: Nullable(JobErrorSchema),
    attempts: Type.Integer({ minimum: 0 }),
    backend: Nullable(Type.String({ description: 'the TensorFlow.js backend that trained it' })),
    dropped: Type.Optional(Nullable(Type.Object({ leaked: Type.Integer() }, { description: 'images left out with config.dropLeaked' }))),
    refit: Type.Optional(Nullable(RefitSchema)),
    createdAt: Type.String({ format: 'date-time' }),
    startedAt: Nullable(Type.String({ format: 'date-time' })),
    finishedAt: Nullable(Type.String({ format: 'date-time' })),
  },
  { title: 'Job' },
);
export type Job = Static<typeof JobSchema>;

/** What the job store keeps besides what the API serves. */
export type JobRecord = Job & { tenant: string; cancelRequested: boolean };

/** An event of GET /v1/jobs/:id/events (also published on the job's Redis channel). */
export type JobEvent =
  | { type: 'progress'; data: Partial<Job> }
  | { type: 'epoch'; data: HistoryRow }
  | { type: 'state'; data: Partial<Job> };

export const CreateJobBody = Type.Object(
  {
    datasetId: Type.String({ pattern: ID_PATTERN.ds, description: 'a dataset id from POST /v1/datasets' }),
    config: Type.Optional(TrainingConfigSchema),
  },
  { additionalProperties: false },
);
export type CreateJobBody = Static<typeof CreateJobBody>;

export const JobListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
  state: Type.Optional(JobStateSchema),
});

export const JobPage = Page(JobSchema);
export type JobPage = Static<typeof JobPage>;

export const CancelResponse = Type.Object({ id: Type.String(), state: JobStateSchema, cancelRequested: Type.Boolean() });
export type CancelResponse = Static<typeof CancelResponse>;

/** One evaluated image of a job's validation or test split. */
export const EvaluatedImageSchema = Type.Object(
  {
    imageId: Nullable(Type.String({ pattern: ID_PATTERN.img }), "the image's id in the dataset (as in its health report); null for datasets stored without ids"),
    path: Nullable(Type.String({ description: 'where it was in the uploaded archive, where the dataset index records it' })),
    label: Type.String(),
    predicted: Type.String(),
    probabilities: Type.Array(Type.Number(), { description: 'calibrated, one per label in `labels` order, as /predict gives them' }),
  },
  { title: 'EvaluatedImage' },
);
export type EvaluatedImage = Static<typeof EvaluatedImageSchema>;

/** The per-image results the worker saves beside the model (PREDICTIONS_FILE); null where the split had no images. */
export interface EvaluatedImages {
  labels: string[];
  validation: EvaluatedImage[] | null;
  test: EvaluatedImage[] | null;
}

export const EvaluatedSplit = Type.Union([Type.Literal('validation'), Type.Literal('test')]);

export const PredictionsQuery = Type.Object({ split: Type.Optional(Type.Union(EvaluatedSplit.anyOf, { default: 'validation' })) });

export const JobPredictions = Type.Object({
  jobId: Type.String(),
  modelId: Type.String(),
  split: EvaluatedSplit,
  labels: Type.Array(Type.String()),
  items: Type.Array(EvaluatedImageSchema),
});
export type JobPredictions = Static<typeof JobPredictions>;

export const CurvesQuery = Type.Object({
  width: Type.Optional(Type.Integer({ minimum: 480, maximum: 4000, default: 960, description: 'picture width in pixels' })),
  height: Type.Optional(Type.Integer({ minimum: 240, maximum: 3000, default: 420, description: 'picture height in pixels' })),
});

/** A likely label error: an image whose given label disagrees most confidently with an out-of-sample prediction. */
export const LabelIssueSchema = Type.Object(
  {
    imageId: Nullable(Type.String({ pattern: ID_PATTERN.img }), "the image's id in the dataset (as in its health report); null for datasets stored without ids"),
    path: Nullable(Type.String({ description: 'where it was in the uploaded archive, where the dataset index records it' })),
    split: Split,
    label: Type.String(),
    suggestedLabel: Type.String(),
    score: Type.Number({ minimum: 0, maximum: 1, description: '(max other probability - probability of the given label + 1) / 2, out of sample' }),
  },
  { title: 'LabelIssue' },
);
export type LabelIssue = Static<typeof LabelIssueSchema>;

const LabelIssuesMethod = Type.Object({ name: Type.Literal('confident_learning'), folds: Type.Integer() }, { description: 'how they were found' });
const ScoredCounts = Type.Object({ train: Type.Integer(), validation: Type.Integer() }, { description: 'images scored per split of the job' });

/** The job artifact (LABEL_ISSUES_FILE) the worker saves: the issues, or why there are none. */
export type LabelIssuesFile =
  | {
      available: true;
      labels: string[];
      method: Static<typeof LabelIssuesMethod>;
      scored: Static<typeof ScoredCounts>;
      seconds: number;
      /** Most suspicious first. */
      items: LabelIssue[];
    }
  | { available: false; reason: string };

export const LabelIssuesQuery = Type.Object({
  split: Type.Optional(Type.Union(Split.anyOf, { description: 'only images of this split of the dataset' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'at most this many items (default: all)' })),
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
});

/** GET /v1/jobs/:id/label-issues. */
export const LabelIssuesSchema = Type.Object(
  {
    jobId: Type.String({ pattern: ID_PATTERN.job }),
    datasetId: Type.String({ pattern: ID_PATTERN.ds }),
    labels: Type.Array(Type.String()),
    method: LabelIssuesMethod,
    scored: ScoredCounts,
    total: Type.Integer({ description: 'issues of the split asked for, before limit and offset' }),
    offset: Type.Integer(),
    items: Type.Array(LabelIssueSchema, { description: 'most suspicious first' }),
  },
  { title: 'LabelIssues' },
);
export type LabelIssues = Static<typeof LabelIssuesSchema>;

// Trained models: the record, its files, prediction and explanation.
import { Type, type Static } from '@sinclair/typebox';
import { ID_PATTERN, List, Nullable } from './common';
import { EvalMetricsSchema } from './jobs';

/** The int8 check after training, as the model's record shows it (graft.json and metrics.json hold it whole). */
export const Int8CheckSchema = Type.Object(
  {
    used: Type.Boolean({ description: '`/predict` serves model.int8.onnx (false: model.onnx, in fp32)' }),
    reason: Nullable(Type.String({ description: 'why int8 is not served (null where it is)' })),
    agreement: Nullable(Type.Number({ description: 'share of the validation images compared on which int8 and fp32 predict the same class' })),
    accuracyFp32: Nullable(
      Type.Number({
        description:
          "model.onnx's accuracy on the images compared; where the job refit (its `refit`), the model served trained on them, so this is not a held-out figure: the job's `validation` is",
      }),
    ),
    accuracyInt8: Nullable(Type.Number({ description: "model.int8.onnx's accuracy on the same images (at most 0.3 points below fp32's where int8 is used)" })),
    images: Type.Integer({ description: 'validation images compared' }),
  },
  { title: 'Int8Check' },
);
export type Int8Check = Static<typeof Int8CheckSchema>;

/** A model as the API serves it; stored as record.json, written last. */
export const ModelRecordSchema = Type.Object(
  {
    id: Type.String({ pattern: ID_PATTERN.mdl }),
    jobId: Type.String({ pattern: ID_PATTERN.job }),
    datasetId: Type.String({ pattern: ID_PATTERN.ds }),
    labels: Type.Array(Type.String()),
    backbone: Nullable(Type.String({ description: 'null for a network trained from scratch' })),
    method: Type.String(),
    inputSize: Type.Integer(),
    metrics: Type.Object({ test: Type.Optional(Nullable(EvalMetricsSchema)), validation: Type.Optional(Nullable(EvalMetricsSchema)) }),
    artifacts: Type.Array(Type.String()),
    int8: Type.Optional(
      Nullable(
        Int8CheckSchema,
        'whether `/predict` serves the int8 model, and why not: null where no check ran (GRAFT_INT8=false, or no ONNX model); absent from models made before it was recorded here',
      ),
    ),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { title: 'Model' },
);
export type ModelRecord = Static<typeof ModelRecordSchema>;

export const ModelList = List(ModelRecordSchema);
export type ModelList = Static<typeof ModelList>;

export const ArtifactSchema = Type.Object({ name: Type.String(), bytes: Type.Integer(), url: Type.String() });
export type Artifact = Static<typeof ArtifactSchema>;
export const ArtifactList = Type.Object({ items: Type.Array(ArtifactSchema) });

export const ArtifactParams = Type.Object({
  id: Type.String({ pattern: ID_PATTERN.mdl }),
  file: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$' }),
});

export const PredictionSchema = Type.Object({ label: Type.String(), probability: Type.Number() }, { title: 'Prediction' });
export type Prediction = Static<typeof PredictionSchema>;

export const OodResultSchema = Type.Object(
  {
    score: Type.Number({ description: 'mean distance of the image to its nearest training images in feature space' }),
    flagged: Type.Boolean({ description: 'the score is above the threshold: the image looks like none of the classes' }),
  },
  { title: 'OodResult' },
);
export type OodResult = Static<typeof OodResultSchema>;

export const EngineSchema = Type.Union([Type.Literal('onnxruntime'), Type.Literal('tfjs')]);
export type EngineName = Static<typeof EngineSchema>;

export const PredictTimingSchema = Type.Object(
  {
    totalMs: Type.Number(),
    decodeMs: Nullable(Type.Number({ description: 'null where the engine decodes inside inference' })),
    queueMs: Type.Number(),
    inferenceMs: Type.Number(),
    batchSize: Type.Integer(),
    loadMs: Type.Number(),
    engine: EngineSchema,
  },
  { title: 'PredictTiming' },
);

export const PredictQuery = Type.Object({
  topK: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 5 })),
  tta: Type.Optional(Type.Literal('flip', { description: 'flip: average each prediction with that of the image mirrored left to right' })),
  oodThreshold: Type.Optional(
    Type.Number({ minimum: 0, maximum: 2, description: "flag images whose out-of-distribution score is above this (default: the model's, set in training)" }),
  ),
});

export const PredictResponseSchema = Type.Object({
  modelId: Type.String(),
  results: Type.Array(
    Type.Object({
      predictions: Type.Array(PredictionSchema),
      outOfDistribution: Nullable(OodResultSchema, 'null for a model served by TensorFlow.js or trained from scratch'),
    }),
    { description: 'one per image, in the order sent' },
  ),
  timing: PredictTimingSchema,
});
export type PredictResponse = Static<typeof PredictResponseSchema>;

export const ExplainQuery = Type.Object({
  label: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'the class to explain (default: the most probable)' })),
});

/** Grad-CAM of one image for one label. */
export const ExplanationSchema = Type.Object(
  {
    label: Type.String(),
    probability: Type.Number(),
    heatmap: Type.Object({
      width: Type.Integer(),
      height: Type.Integer(),
      values: Type.Array(Type.Number(), { description: 'row-major, in [0, 1], over the last convolutional feature map' }),
    }),
    overlay: Type.String({ description: 'a PNG data URL: the heatmap over the image' }),
  },
  { title: 'Explanation' },
);
export type Explanation = Static<typeof ExplanationSchema>;

export const ExplainResponse = Type.Composite([Type.Object({ modelId: Type.String() }), ExplanationSchema]);

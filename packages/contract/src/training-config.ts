// The training config of POST /v1/jobs: one TypeBox schema gives validation, types and the OpenAPI document.
// Every field is optional; resolveConfig() fills in the classic small-data recipe's defaults.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

const Optimizer = Type.Union([Type.Literal('rmsprop'), Type.Literal('adam'), Type.Literal('sgd')]);

export const AugmentationSchema = Type.Object(
  {
    rotationRange: Type.Optional(Type.Number({ minimum: 0, maximum: 180, default: 40 })),
    widthShiftRange: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.2 })),
    heightShiftRange: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.2 })),
    shearRange: Type.Optional(Type.Number({ minimum: 0, maximum: 45, default: 0.2 })),
    zoomRange: Type.Optional(Type.Number({ minimum: 0, maximum: 0.9, default: 0.2 })),
    horizontalFlip: Type.Optional(Type.Boolean({ default: true })),
    verticalFlip: Type.Optional(Type.Boolean({ default: false })),
    fillMode: Type.Optional(
      Type.Union([Type.Literal('nearest'), Type.Literal('constant'), Type.Literal('reflect'), Type.Literal('wrap')], {
        default: 'nearest',
      }),
    ),
    cval: Type.Optional(Type.Number({ minimum: 0, maximum: 255, default: 0 })),
    copies: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 50,
        default: 3,
        description: 'augmented copies of each training image whose features are computed once (cached mode)',
      }),
    ),
    mode: Type.Optional(
      Type.Union([Type.Literal('cached'), Type.Literal('end_to_end')], {
        default: 'cached',
        description: 'cached: features of `copies` augmented copies computed once; end_to_end: new augmented images through the base every epoch',
      }),
    ),
  },
  { title: 'Augmentation', additionalProperties: false },
);

const PhaseSchema = (epochs: number, learningRate: number) =>
  Type.Object(
    {
      epochs: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: epochs })),
      optimizer: Type.Optional(Type.Union(Optimizer.anyOf, { default: 'rmsprop' })),
      learningRate: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, default: learningRate })),
    },
    { additionalProperties: false },
  );

const FeatureExtractionSchema = PhaseSchema(30, 1e-4);

const HeadSchema = Type.Object(
  {
    units: Type.Optional(Type.Integer({ minimum: 0, maximum: 8192, default: 256 })),
    dropout: Type.Optional(Type.Number({ minimum: 0, maximum: 0.95, default: 0.5 })),
    pooling: Type.Optional(Type.Union([Type.Literal('flatten'), Type.Literal('avg'), Type.Literal('max')], { default: 'avg' })),
  },
  { additionalProperties: false },
);

const FineTuningSchema = Type.Object(
  {
    fromLayer: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 200 }), Type.Null()], { default: null })),
    epochs: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 4 })),
    optimizer: Type.Optional(Type.Union(Optimizer.anyOf, { default: 'rmsprop' })),
    learningRate: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 1e-5 })),
  },
  { additionalProperties: false },
);

const EarlyStoppingSchema = Type.Object(
  {
    patience: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100, default: 5, description: 'epochs without a lower validation loss after which the head (or the scratch network) stops training' }),
    ),
    fineTuningPatience: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100,
        default: 2,
        description: "the same for fine-tuning, whose first mark to beat is the head's best validation loss",
      }),
    ),
  },
  { additionalProperties: false },
);

const SplitConfigSchema = Type.Object(
  {
    validation: Type.Optional(Type.Number({ minimum: 0, maximum: 0.5, default: 0.2 })),
    test: Type.Optional(Type.Number({ minimum: 0, maximum: 0.5, default: 0 })),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: 1 })),
  },
  { additionalProperties: false },
);

export const TrainingConfigSchema = Type.Object(
  {
    method: Type.Optional(
      Type.Union([Type.Literal('scratch'), Type.Literal('feature_extraction'), Type.Literal('fine_tuning')], {
        default: 'fine_tuning',
      }),
    ),
    backbone: Type.Optional(Type.String({ minLength: 1, maxLength: 100, default: 'mobilenet_v1_0.75_224' })),
    inputSize: Type.Optional(Type.Integer({ minimum: 32, maximum: 1024 })),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 512, default: 32 })),
    augmentation: Type.Optional(Type.Union([AugmentationSchema, Type.Literal(false)])),
    head: Type.Optional(HeadSchema),
    featureExtraction: Type.Optional(FeatureExtractionSchema),
    fineTuning: Type.Optional(FineTuningSchema),
    earlyStopping: Type.Optional(Type.Union([EarlyStoppingSchema, Type.Literal(false)])),
    split: Type.Optional(SplitConfigSchema),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: 1 })),
    dropLeaked: Type.Optional(
      Type.Boolean({
        default: false,
        description: "leave out validation and test images that are near-copies of an earlier split's (the dataset's health report lists them)",
      }),
    ),
    labelIssues: Type.Optional(
      Type.Boolean({
        default: true,
        description: 'score every training image by k-fold cross-validation over the cached features and rank likely label errors (GET /v1/jobs/:id/label-issues)',
      }),
    ),
    refit: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          "once early stopping has chosen the epochs on the validation images, train the model again from its start on the training and validation images together for those epochs (transfer learning with cached augmentation); the validation metrics reported stay those of the model chosen, on images it did not train on",
      }),
    ),
  },
  { title: 'TrainingConfig', additionalProperties: false },
);

export type TrainingConfigInput = Static<typeof TrainingConfigSchema>;

const Given = Type.Required(TrainingConfigSchema).properties;

/**
 * The config resolved to its last field, every default filled in and the input size chosen: what a job's record
 * shows and what it trains.
 */
export const ResolvedTrainingConfigSchema = Type.Object(
  {
    method: Given.method,
    backbone: Given.backbone,
    inputSize: Type.Integer({ minimum: 32, maximum: 1024, description: "the config's, or the backbone's training size" }),
    batchSize: Given.batchSize,
    augmentation: Type.Union([Type.Required(AugmentationSchema), Type.Literal(false)]),
    head: Type.Required(HeadSchema),
    featureExtraction: Type.Required(FeatureExtractionSchema),
    fineTuning: Type.Required(FineTuningSchema),
    earlyStopping: Type.Union([Type.Required(EarlyStoppingSchema), Type.Literal(false)]),
    split: Type.Required(SplitConfigSchema),
    seed: Given.seed,
    dropLeaked: Given.dropLeaked,
    labelIssues: Given.labelIssues,
    refit: Given.refit,
  },
  { title: 'ResolvedTrainingConfig' },
);
export type ResolvedTrainingConfig = Static<typeof ResolvedTrainingConfigSchema>;
/** Every default filled in; inputSize null where the config gives none (the backbone's training size is chosen later). */
export type TrainingConfig = Omit<ResolvedTrainingConfig, 'inputSize'> & { inputSize: number | null };
type Augmentation = Exclude<TrainingConfig['augmentation'], false>;

/** A part of the config with its defaults filled in. */
const fill = <T>(schema: TSchema, given: unknown): T => Value.Default(schema, structuredClone(given ?? {})) as T;

export const DEFAULT_AUGMENTATION: Augmentation = fill(AugmentationSchema, {});

/** Fills in every default. The input must already satisfy TrainingConfigSchema. */
export function resolveConfig(input: TrainingConfigInput = {}): TrainingConfig {
  const c = fill<TrainingConfigInput & Pick<TrainingConfig, 'method' | 'backbone' | 'batchSize' | 'seed' | 'dropLeaked' | 'labelIssues' | 'refit'>>(TrainingConfigSchema, input);
  return {
    method: c.method,
    backbone: c.backbone,
    inputSize: c.inputSize ?? null,
    batchSize: c.batchSize,
    augmentation: c.augmentation === false ? false : fill(AugmentationSchema, c.augmentation),
    head: fill(HeadSchema, c.head),
    featureExtraction: fill(FeatureExtractionSchema, c.featureExtraction),
    fineTuning: fill(FineTuningSchema, c.fineTuning),
    earlyStopping: c.earlyStopping === false ? false : fill(EarlyStoppingSchema, c.earlyStopping),
    split: fill(SplitConfigSchema, c.split),
    seed: c.seed,
    dropLeaked: c.dropLeaked,
    labelIssues: c.labelIssues,
    refit: c.refit,
  };
}

/** The config as a job accepts it: resolved, at its own input size or, where it gives none, at `inputSize`. */
export const acceptConfig = (input: TrainingConfigInput, inputSize: number): ResolvedTrainingConfig => ({
  ...resolveConfig(input),
  inputSize: input.inputSize ?? inputSize,
});

/** Validation errors as `{field, message}`, field in JSON-pointer-like dotted form (`config.head.units`). */
export function validateConfig(input: unknown): { field: string; message: string }[] {
  return [...Value.Errors(TrainingConfigSchema, input)].map((e) => ({
    field: ['config', ...e.path.split('/').filter(Boolean)].join('.'),
    message: e.message,
  }));
}

/**
 * Fields added to the config after jobs could be accepted without them, each with the value that trains such a job
 * as it was accepted (what the run did before the field existed), never the field's default. A job queued by an
 * earlier version gets these, so that an upgrade does not fail the jobs it finds in the queue.
 */
const ADDED_FIELDS: Array<{ field: string; fill(config: TrainingConfigInput): TrainingConfigInput }> = [
  {
    // Before it, fine-tuning stopped on the head's patience.
    field: 'earlyStopping.fineTuningPatience',
    fill: (c) =>
      c.earlyStopping && c.earlyStopping.fineTuningPatience === undefined && c.earlyStopping.patience !== undefined
        ? { ...c, earlyStopping: { ...c.earlyStopping, fineTuningPatience: c.earlyStopping.patience } }
        : c,
  },
  // Before it, the model chosen on validation was the model trained.
  { field: 'refit', fill: (c) => (c.refit === undefined ? { ...c, refit: false } : c) },
];

/** `config` with the fields added since it may have been accepted filled in as it was trained then (ADDED_FIELDS). */
export function withAddedFields(config: TrainingConfigInput): TrainingConfigInput {
  return ADDED_FIELDS.reduce((c, a) => a.fill(c), config);
}

/**
 * The fields (dotted, `head.units`) that resolveConfig would still fill in or change: none for the config of a
 * job as it was accepted, which is trained as it is, never resolved again with the defaults of a later version.
 */
export function unresolvedFields(config: TrainingConfigInput): string[] {
  const fields: string[] = [];
  const walk = (want: unknown, got: unknown, at: string) => {
    if (want !== null && typeof want === 'object' && got !== null && typeof got === 'object') {
      for (const [k, v] of Object.entries(want)) walk(v, (got as Record<string, unknown>)[k], at ? `${at}.${k}` : k);
    } else if (want !== got || want === null && at === 'inputSize') fields.push(at);
  };
  walk(resolveConfig(config), config, '');
  return fields;
}

/** Epochs a config trains at most: the head's, and fine-tuning's where the method fine-tunes. */
export const plannedEpochs = (c: TrainingConfig): number => c.featureExtraction.epochs + (c.method === 'fine_tuning' ? c.fineTuning.epochs : 0);

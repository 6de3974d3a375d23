// The training config of POST /v1/jobs: one TypeBox schema gives validation, types and the OpenAPI document.
// Every field is optional; resolveConfig() fills in the classic small-data recipe's defaults.
import { Type, type Static } from '@sinclair/typebox';
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
        default: 5,
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
  { additionalProperties: false },
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
    head: Type.Optional(
      Type.Object(
        {
          units: Type.Optional(Type.Integer({ minimum: 0, maximum: 8192, default: 256 })),
          dropout: Type.Optional(Type.Number({ minimum: 0, maximum: 0.95, default: 0.5 })),
          pooling: Type.Optional(
            Type.Union([Type.Literal('flatten'), Type.Literal('avg'), Type.Literal('max')], { default: 'avg' }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    featureExtraction: Type.Optional(PhaseSchema(30, 2e-5)),
    fineTuning: Type.Optional(
      Type.Object(
        {
          fromLayer: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 200 }), Type.Null()], { default: null })),
          epochs: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 20 })),
          optimizer: Type.Optional(Type.Union(Optimizer.anyOf, { default: 'rmsprop' })),
          learningRate: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 1e-5 })),
        },
        { additionalProperties: false },
      ),
    ),
    earlyStopping: Type.Optional(
      Type.Union([
        Type.Object(
          { patience: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 5 })) },
          { additionalProperties: false },
        ),
        Type.Literal(false),
      ]),
    ),
    split: Type.Optional(
      Type.Object(
        {
          validation: Type.Optional(Type.Number({ minimum: 0, maximum: 0.5, default: 0.2 })),
          test: Type.Optional(Type.Number({ minimum: 0, maximum: 0.5, default: 0 })),
          seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
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
  },
  { additionalProperties: false },
);

export type TrainingConfigInput = Static<typeof TrainingConfigSchema>;

type Augmentation = Required<Static<typeof AugmentationSchema>>;
export interface TrainingConfig {
  method: 'scratch' | 'feature_extraction' | 'fine_tuning';
  backbone: string;
  inputSize: number | null; // null: the backbone's own (the worker resolves it)
  batchSize: number;
  augmentation: Augmentation | false;
  head: { units: number; dropout: number; pooling: 'flatten' | 'avg' | 'max' };
  featureExtraction: { epochs: number; optimizer: 'rmsprop' | 'adam' | 'sgd'; learningRate: number };
  fineTuning: { fromLayer: string | null; epochs: number; optimizer: 'rmsprop' | 'adam' | 'sgd'; learningRate: number };
  earlyStopping: { patience: number } | false;
  split: { validation: number; test: number; seed: number };
  seed: number;
  dropLeaked: boolean;
  labelIssues: boolean;
}

export const DEFAULT_AUGMENTATION: Augmentation = Value.Default(AugmentationSchema, {}) as Augmentation;

/** Fills in every default. The input must already satisfy TrainingConfigSchema. */
export function resolveConfig(input: TrainingConfigInput = {}): TrainingConfig {
  const c = Value.Default(TrainingConfigSchema, structuredClone(input)) as Record<string, any>;
  const phase = (schemaKey: 'featureExtraction' | 'fineTuning') =>
    Value.Default((TrainingConfigSchema.properties as any)[schemaKey].anyOf?.[0] ?? (TrainingConfigSchema.properties as any)[schemaKey], c[schemaKey] ?? {});
  return {
    method: c.method,
    backbone: c.backbone,
    inputSize: c.inputSize ?? null,
    batchSize: c.batchSize,
    augmentation:
      c.augmentation === false ? false : (Value.Default(AugmentationSchema, c.augmentation ?? {}) as Augmentation),
    head: Value.Default(TrainingConfigSchema.properties.head, c.head ?? {}) as TrainingConfig['head'],
    featureExtraction: phase('featureExtraction') as TrainingConfig['featureExtraction'],
    fineTuning: phase('fineTuning') as TrainingConfig['fineTuning'],
    earlyStopping:
      c.earlyStopping === false
        ? false
        : ({ patience: c.earlyStopping?.patience ?? 5 } as { patience: number }),
    split: Value.Default(TrainingConfigSchema.properties.split, c.split ?? {}) as TrainingConfig['split'],
    seed: c.seed,
    dropLeaked: c.dropLeaked,
    labelIssues: c.labelIssues,
  };
}

/** Validation errors as `{field, message}`, field in JSON-pointer-like dotted form (`config.head.units`). */
export function validateConfig(input: unknown): { field: string; message: string }[] {
  return [...Value.Errors(TrainingConfigSchema, input)].map((e) => ({
    field: ['config', ...e.path.split('/').filter(Boolean)].join('.'),
    message: e.message,
  }));
}

/** A config resolved to its last field, the input size chosen too: what a job's record shows and what it trains. */
export type ResolvedTrainingConfig = TrainingConfig & { inputSize: number };

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

// One schema per job payload. The API validates before it enqueues; the worker validates again on receipt.
// Payloads carry ids and S3 keys, never image data, and the training config resolved as the job was accepted (every
// default filled in, the input size chosen): the job record shows that config and the run trains it as it is.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ID_PATTERN, TrainingConfigSchema, unresolvedFields, withAddedFields, type ResolvedTrainingConfig } from '@graft/contract';

export const TrainJobPayloadSchema = Type.Object(
  {
    jobId: Type.String({ pattern: ID_PATTERN.job }),
    tenant: Type.String({ minLength: 1 }),
    datasetId: Type.String({ pattern: ID_PATTERN.ds }),
    manifestKey: Type.String({ minLength: 1 }),
    config: TrainingConfigSchema,
  },
  { additionalProperties: false },
);
export type TrainJobPayload = Omit<Static<typeof TrainJobPayloadSchema>, 'config'> & { config: ResolvedTrainingConfig };

export class PayloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadError';
  }
}

export function parseTrainJobPayload(data: unknown): TrainJobPayload {
  const errors = [...Value.Errors(TrainJobPayloadSchema, data)];
  if (errors.length) {
    throw new PayloadError(`invalid train job payload: ${errors.map((e) => `${e.path || '/'} ${e.message}`).join('; ')}`);
  }
  const payload = data as Static<typeof TrainJobPayloadSchema>;
  // A job queued before a field existed trains as it did then.
  const config = withAddedFields(payload.config);
  const unresolved = unresolvedFields(config);
  if (unresolved.length) {
    throw new PayloadError(`invalid train job payload: /config is not resolved (${unresolved.join(', ')} left to defaults)`);
  }
  return { ...payload, config } as TrainJobPayload;
}

// One schema per job payload. The API validates before it enqueues; the worker validates again on receipt.
// Payloads carry ids and S3 keys, never image data.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { TrainingConfigSchema } from '@graft/vision/config';

export const TrainJobPayloadSchema = Type.Object(
  {
    jobId: Type.String({ pattern: '^job_[A-Za-z0-9]+$' }),
    tenant: Type.String({ minLength: 1 }),
    datasetId: Type.String({ pattern: '^ds_[A-Za-z0-9]+$' }),
    manifestKey: Type.String({ minLength: 1 }),
    config: TrainingConfigSchema,
  },
  { additionalProperties: false },
);
export type TrainJobPayload = Static<typeof TrainJobPayloadSchema>;

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
  return data as TrainJobPayload;
}

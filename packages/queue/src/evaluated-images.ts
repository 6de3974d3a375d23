// The per-image results of a job's evaluation, as the worker saves them beside the model and the API serves them
// (GET /v1/jobs/:id/predictions).

/** The model artifact that holds them. */
export const PREDICTIONS_FILE = 'predictions.json';

export type { EvaluatedImage, EvaluatedImages } from '@graft/contract';

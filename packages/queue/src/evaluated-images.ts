// The per-image results of a job's evaluation, as the worker saves them beside the model and the API serves them
// (GET /v1/jobs/:id/predictions).

/** The model artifact that holds them. */
export const PREDICTIONS_FILE = 'predictions.json';

export interface EvaluatedImage {
  /** The image's id in the dataset (`img_…`, as in its health report); null for datasets stored without ids. */
  imageId: string | null;
  /** Where it was in the uploaded archive, where the dataset index records it. */
  path: string | null;
  label: string;
  predicted: string;
  /** Calibrated, one per label in `labels` order, as /predict gives them. */
  probabilities: number[];
}

export interface EvaluatedImages {
  labels: string[];
  /** Null where the split had no images. */
  validation: EvaluatedImage[] | null;
  test: EvaluatedImage[] | null;
}

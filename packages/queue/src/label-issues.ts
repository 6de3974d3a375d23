// Likely label errors of a job's dataset, as the worker saves them among the job's files and the API serves them
// (GET /v1/jobs/:id/label-issues).

/** The job artifact that holds them (under the job's `artifacts/`). */
export const LABEL_ISSUES_FILE = 'label-issues.json';

export interface LabelIssueItem {
  /** The image's id in the dataset (`img_…`, as in its health report); null for datasets stored without ids. */
  imageId: string | null;
  /** Where it was in the uploaded archive, where the dataset index records it. */
  path: string | null;
  /** The image's split in the dataset. */
  split: 'train' | 'validation' | 'test';
  label: string;
  suggestedLabel: string;
  /** In [0, 1]: (max other probability - probability of the given label + 1) / 2, out of sample. */
  score: number;
}

export type LabelIssuesFile =
  | {
      available: true;
      labels: string[];
      /** How they were found: confident learning over k-fold out-of-sample probabilities. */
      method: { name: 'confident_learning'; folds: number };
      /** Images scored per split of the job (a carved validation split is counted as validation). */
      scored: { train: number; validation: number };
      seconds: number;
      /** Most suspicious first. */
      items: LabelIssueItem[];
    }
  | { available: false; reason: string };

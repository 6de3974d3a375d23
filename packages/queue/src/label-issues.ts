// Likely label errors of a job's dataset, as the worker saves them among the job's files and the API serves them
// (GET /v1/jobs/:id/label-issues).

/** The job artifact that holds them (under the job's `artifacts/`). */
export const LABEL_ISSUES_FILE = 'label-issues.json';

export type { LabelIssuesFile } from '@graft/contract';

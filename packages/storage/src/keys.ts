// Object layout in the bucket. Every tenant's objects live under its own prefix.
export const keys = {
  tenant: (t: string) => `tenants/${t}/`,
  dataset: (t: string, id: string) => `tenants/${t}/datasets/${id}/`,
  datasetManifest: (t: string, id: string) => `tenants/${t}/datasets/${id}/manifest.json`,
  /** The per-image index the worker trains from. */
  datasetIndex: (t: string, id: string) => `tenants/${t}/datasets/${id}/index.json`,
  /** The health report made at upload. */
  datasetHealth: (t: string, id: string) => `tenants/${t}/datasets/${id}/health.json`,
  datasetImage: (t: string, id: string, sha256: string, ext: string) =>
    `tenants/${t}/datasets/${id}/images/${sha256}.${ext}`,
  datasets: (t: string) => `tenants/${t}/datasets/`,
  model: (t: string, id: string) => `tenants/${t}/models/${id}/`,
  modelRecord: (t: string, id: string) => `tenants/${t}/models/${id}/record.json`,
  modelArtifact: (t: string, id: string, file: string) => `tenants/${t}/models/${id}/artifacts/${file}`,
  modelArtifacts: (t: string, id: string) => `tenants/${t}/models/${id}/artifacts/`,
  models: (t: string) => `tenants/${t}/models/`,
  checkpoint: (t: string, jobId: string) => `tenants/${t}/jobs/${jobId}/checkpoint/`,
  /** Staging area for a job's artifacts before they are published as a model. */
  staging: (t: string, jobId: string) => `tenants/${t}/jobs/${jobId}/staging/`,
  job: (t: string, jobId: string) => `tenants/${t}/jobs/${jobId}/`,
  /** A file a job keeps apart from its model (label issues). */
  jobArtifact: (t: string, jobId: string, file: string) => `tenants/${t}/jobs/${jobId}/artifacts/${file}`,
};

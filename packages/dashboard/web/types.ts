// The API's shapes, as the dashboard reads them: the contract's (@graft/contract, docs/api.md). Types only, and the
// job states from a file without TypeBox, so that the bundle carries no schema code.
export type {
  Backbone,
  Calibration,
  ClassMetrics,
  DatasetManifest as Dataset,
  DatasetList,
  DetailedMetrics,
  EvalMetrics,
  EvaluatedImage,
  Explanation,
  HealthReport as DatasetHealth,
  HistoryRow,
  ImageRef,
  Job,
  JobPage,
  JobPredictions,
  JobState,
  ModelList,
  ModelRecord as Model,
  Prediction,
  PredictResponse,
  ReliabilityBin,
  Thumbnail,
  Thumbnails,
} from '@graft/contract';
export { TERMINAL_STATES as TERMINAL } from '@graft/contract/job-states';

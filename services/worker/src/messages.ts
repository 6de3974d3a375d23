// Messages between the worker process and the training child it forks for each job.
import type { GraftConfig } from '@graft/config';
import type { ErrorCode, EvalMetrics, HistoryRow, Refit } from '@graft/contract';
import type { TrainJobPayload } from '@graft/queue';
import type { TrainEvent } from '@graft/vision';

export interface StartMessage {
  type: 'start';
  payload: TrainJobPayload;
  attempt: number;
  config: GraftConfig;
}
export interface AbortMessage {
  type: 'abort';
  reason: 'cancelled' | 'shutdown';
}
export type ParentMessage = StartMessage | AbortMessage;

export interface TrainedModel {
  modelId: string;
  test: EvalMetrics | null;
  validation: EvalMetrics | null;
  refit: Refit | null;
  backend: string;
}

export type ChildMessage =
  | { type: 'backend'; backend: string }
  | { type: 'dataset'; dropped: { leaked: number } }
  | { type: 'resumed'; history: HistoryRow[]; phase: string; epoch: number }
  | { type: 'event'; event: TrainEvent }
  | { type: 'done'; model: TrainedModel }
  | { type: 'error'; code: ErrorCode; message: string; permanent: boolean; aborted?: 'cancelled' | 'shutdown' };

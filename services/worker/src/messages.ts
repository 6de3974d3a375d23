// Messages between the worker process and the training child it forks for each job.
import type { GraftConfig } from '@graft/config';
import type { TrainJobPayload } from '@graft/queue';

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
  test: Record<string, unknown> | null;
  validation: Record<string, unknown> | null;
  backend: string;
}

export type ChildMessage =
  | { type: 'backend'; backend: string }
  | { type: 'dataset'; dropped: { leaked: number } }
  | { type: 'resumed'; history: any[]; phase: string; epoch: number }
  | { type: 'event'; event: any }
  | { type: 'done'; model: TrainedModel }
  | { type: 'error'; code: string; message: string; permanent: boolean; aborted?: 'cancelled' | 'shutdown' };

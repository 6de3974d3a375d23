// The states of a training job. No TypeBox here: the dashboard reads this file as it is.

export const JOB_STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** The states a job never leaves. */
export const TERMINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

export const isTerminal = (state: JobState): boolean => TERMINAL_STATES.includes(state);

/** The phases a running job goes through, in order. */
export const JOB_PHASES = ['preparing', 'extracting', 'training_head', 'fine_tuning', 'refitting', 'evaluating', 'exporting'] as const;
export type JobPhase = (typeof JOB_PHASES)[number];

/** The phases that train epochs, as a history row names them. */
export const TRAINING_PHASES = ['training_head', 'fine_tuning'] as const;
export type TrainingPhase = (typeof TRAINING_PHASES)[number];

/** A job's model id is derived from the job id, so a retried or resumed job can only ever make one model. */
export const modelIdFor = (jobId: string) => `mdl_${jobId.replace(/^job_/, '')}`;

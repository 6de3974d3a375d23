export * from './names';
export * from './payloads';
export * from './connection';
export * from './job-store';
export * from './train-queue';
export { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
export * from './tenant-limits';
export * from './job-lock';
export * from './evaluated-images';

// @graft/contract: the HTTP contract of Graft, written once. The API validates and documents with these schemas;
// the worker, the CLI and the dashboard use their types.
export * from './errors';
export * from './job-states';
export * from './common';
export * from './training-config';
export * from './jobs';
export * from './datasets';
export * from './models';
export * from './backbones';
export * from './service';

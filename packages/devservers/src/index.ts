export * from './process';
export * from './redis';
export * from './s3';

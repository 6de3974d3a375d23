export * from './storage';
export * from './keys';
export * from './s3-url';
export * from './backbone-source';
export * from './outage';

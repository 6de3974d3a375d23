// The embedded S3-protocol server as a program: s3rver over CrashSafeStore (s3-store.ts), so that a stop at any
// moment leaves every object whole. Started by startEmbeddedS3 as
//   node --openssl-legacy-provider --import tsx s3-server.ts <dir> <host> <port>
// (s3rver signs with an algorithm that OpenSSL 3 keeps in its legacy provider).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import { CrashSafeStore } from './s3-store';

const require = createRequire(import.meta.url);
type Next = () => Promise<void>;
interface Context {
  method: string;
  path: string;
  status: number;
}
const S3rver = require('s3rver') as new (options: object) => {
  store: unknown;
  context: { store: unknown };
  middleware: ((ctx: Context, next: Next) => Promise<void>)[];
  run(): Promise<unknown>;
};

const [dir, host, port] = process.argv.slice(2);
if (!dir || !host || !port) {
  console.error('usage: s3-server.ts <dir> <host> <port>');
  process.exit(2);
}
fs.mkdirSync(dir, { recursive: true });
const store = new CrashSafeStore(dir);
store.onRepair = (file) => console.error(`embedded S3: removed the unreadable metadata file ${file} (a write cut short)`);
store.removePartials();
const server = new S3rver({ directory: dir, address: host, port: Number(port), silent: true, vhostBuckets: false });
server.store = server.context.store = store;
// HEAD of a bucket says whether it exists. s3rver answers it with a listing of up to 1,000 objects, reading the
// metadata of each: ~80 ms of CPU with a few thousand objects, for the ping every worker and /readyz send.
server.middleware.unshift(async (ctx, next) => {
  const bucket = ctx.method === 'HEAD' ? /^\/([^/]+)\/?$/.exec(ctx.path)?.[1] : undefined;
  if (!bucket) return next();
  ctx.status = (await store.getBucket(decodeURIComponent(bucket))) ? 200 : 404;
});
await server.run();

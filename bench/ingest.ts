// Dataset ingestion speed: a zip and a tar.gz of ../shared/datasets/dogs-vs-cats, every image decoded, first with
// nothing stored, then (--latency, milliseconds, comma-separated) from the zip with every image stored in the embedded
// S3 server (npm start's) behind an HTTP proxy that holds each request that long: the latency of a store across a
// network. At each latency too, how fast POST /v1/datasets/import downloads the same images from an S3 prefix and
// packs them into the tar it then ingests (packPrefix).
// Usage: tsx bench/ingest.ts [dataset folder] [--latency 0,20,50]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { ingestArchive, type ArchiveFormat, type IngestOptions } from '../services/api/src/datasets/ingest';
import { packPrefix } from '../services/api/src/datasets/import';
import { slowEmbeddedS3 } from './delaying-proxy';

const { values: args, positionals } = parseArgs({ options: { latency: { type: 'string', default: '' } }, allowPositionals: true });
const folder = path.resolve(positionals[0] ?? path.join(import.meta.dirname, '../../shared/datasets/dogs-vs-cats'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-ingest-'));
const zip = path.join(tmp, 'd.zip');
const tgz = path.join(tmp, 'd.tar.gz');
execFileSync('zip', ['-qr', zip, '.'], { cwd: folder });
execFileSync('tar', ['-czf', tgz, '.'], { cwd: folder });

async function row(label: string, file: string, fmt: ArchiveFormat, concurrency: number, put: IngestOptions['put']): Promise<void> {
  const t0 = performance.now();
  const r = await ingestArchive(file, fmt, { put, concurrency });
  const s = (performance.now() - t0) / 1000;
  const rss = process.memoryUsage().rss / 2 ** 20;
  console.log(`| ${fmt} | ${concurrency} | ${label} | ${r.imageCount} | ${s.toFixed(1)} | ${(r.imageCount / s).toFixed(0)} | ${rss.toFixed(0)} |`);
}

console.log('| archive | concurrency | stored | images | seconds | images/s | RSS MiB |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
const nowhere = async () => {};
for (const [file, fmt, concurrency] of [[zip, 'zip', 4], [zip, 'zip', 2], [tgz, 'tar.gz', 4]] as const) await row('nowhere', file, fmt, concurrency, nowhere);
const latencies = args.latency.split(',').filter(Boolean).map(Number);
if (latencies.length) {
  const { storage, setLatency, close } = await slowEmbeddedS3(path.join(tmp, 's3'));
  try {
    for (const ms of latencies) {
      setLatency(ms);
      const prefix = `${ms}ms/`;
      await row(`S3, ${ms} ms a request`, zip, 'zip', 4, (key, data) => storage.put(`${prefix}${key.sha256}.${key.format}`, data, `image/${key.format}`));
    }
    console.log('\n| import from an S3 prefix | images | seconds | images/s |\n| --- | --- | --- | --- |');
    const prefix = `${latencies[0]}ms/`;
    let stored = 0;
    for await (const _ of storage.listObjects(prefix)) stored++;
    for (const ms of latencies) {
      setLatency(ms);
      const t0 = performance.now();
      const packed = await packPrefix(storage, 'graft', prefix, { entries: 100_000, bytes: 1e10, objectBytes: 1e8 });
      packed.cleanup();
      const s = (performance.now() - t0) / 1000;
      console.log(`| ${ms} ms a request | ${stored} | ${s.toFixed(1)} | ${(stored / s).toFixed(0)} |`);
    }
  } finally {
    await close();
  }
}
fs.rmSync(tmp, { recursive: true, force: true });

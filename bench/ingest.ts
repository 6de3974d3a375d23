// Dataset ingestion speed: a zip and a tar.gz of ../shared/datasets/dogs-vs-cats, every image decoded.
// Usage: tsx bench/ingest.ts [dataset folder]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ingestArchive, type ArchiveFormat } from '../services/api/src/datasets/ingest';

const folder = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '../../shared/datasets/dogs-vs-cats'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-ingest-'));
const zip = path.join(tmp, 'd.zip');
const tgz = path.join(tmp, 'd.tar.gz');
execFileSync('zip', ['-qr', zip, '.'], { cwd: folder });
execFileSync('tar', ['-czf', tgz, '.'], { cwd: folder });

const runs: [string, ArchiveFormat, number][] = [[zip, 'zip', 4], [zip, 'zip', 2], [tgz, 'tar.gz', 4]];
console.log('| archive | concurrency | images | seconds | images/s | RSS MiB |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const [file, fmt, concurrency] of runs) {
  const t0 = performance.now();
  const r = await ingestArchive(file, fmt, { put: async () => {}, concurrency });
  const s = (performance.now() - t0) / 1000;
  const rss = process.memoryUsage().rss / 2 ** 20;
  console.log(`| ${fmt} | ${concurrency} | ${r.imageCount} | ${s.toFixed(1)} | ${(r.imageCount / s).toFixed(0)} | ${rss.toFixed(0)} |`);
}
fs.rmSync(tmp, { recursive: true, force: true });

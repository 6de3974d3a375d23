// Load: concurrent /predict clients for a while, with training jobs queued through two workers at the same time.
// Reports errors, throughput, latency, jobs lost or run twice, and the API's memory before and after.
// Usage: tsx bench/load.ts [--clients 50] [--seconds 60] [--jobs 20] [--workers 2] [--warmup 10]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedS3, startRedisServer } from '@graft/devservers';
import { patternDataset, zipOf } from '../test/support/images';
import { runService, startApi, waitFor } from '../test/support/processes';

const args = process.argv.slice(2);
const num = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const CLIENTS = num('clients', 50);
const SECONDS = num('seconds', 60);
const JOBS = num('jobs', 20);
const WORKERS = num('workers', 2);
const WARMUP = num('warmup', 10);
const KEY = 'load-bench-key-0123456789';
const H = { authorization: `Bearer ${KEY}` };
const QUICK = {
  method: 'feature_extraction',
  backbone: 'mobilenet_v1_0.25_224',
  inputSize: 96,
  augmentation: { copies: 1 },
  featureExtraction: { epochs: 5, learningRate: 0.001 },
};

const rssOf = (pid: number) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-load-'));
  const [redis, s3] = await Promise.all([
    startRedisServer({ dir: path.join(dir, 'redis') }),
    startEmbeddedS3({ dir: path.join(dir, 's3') }),
  ]);
  const env = {
    REDIS_URL: redis.url,
    S3_ENDPOINT: s3.endpoint,
    GRAFT_BACKBONES: path.resolve(import.meta.dirname, '../../shared/models'),
    GRAFT_API_KEYS: `load:${KEY}`,
    GRAFT_RATE_LIMIT: '0',
    LOG_LEVEL: 'warn',
  };
  const api = await startApi(env);
  const workers = Array.from({ length: WORKERS }, () => runService('services/worker/src/main.ts', env));
  const post = (p: string, body: BodyInit, type: string) =>
    fetch(`${api.url}${p}`, { method: 'POST', headers: { ...H, 'content-type': type }, body });
  const get = async (p: string) => (await fetch(`${api.url}${p}`, { headers: H })).json();
  try {
    const entries = await patternDataset({ train: 16, validation: 4 }, 21);
    const ds = await (await post('/v1/datasets', new Uint8Array(await zipOf(entries)), 'application/zip')).json();
    const first = (await (await post('/v1/jobs', JSON.stringify({ datasetId: ds.id, config: QUICK }), 'application/json')).json()).id;
    const model = await waitFor('the first model', async () => {
      const j = await get(`/v1/jobs/${first}`);
      if (j.state === 'failed') throw new Error(JSON.stringify(j.error));
      return j.modelId as string | null;
    }, 300_000, 500);
    const images = entries.slice(0, 16).map((e) => new Uint8Array(e.data));

    let stop = false;
    const latencies: number[] = [];
    let errors = 0;
    let done = 0;
    const client = async (i: number) => {
      let n = i;
      while (!stop) {
        const t = performance.now();
        try {
          const r = await post(`/v1/models/${model}/predict?topK=1`, images[n++ % images.length], 'image/jpeg');
          await r.arrayBuffer();
          if (r.status !== 200) errors++;
          else done++;
        } catch {
          errors++;
        }
        latencies.push(performance.now() - t);
      }
    };
    const drive = async (seconds: number) => {
      stop = false;
      const all = Array.from({ length: CLIENTS }, (_, i) => client(i));
      await new Promise((r) => setTimeout(r, seconds * 1000));
      stop = true;
      await Promise.all(all);
    };

    await drive(WARMUP);
    const rssWarm = rssOf(api.process.pid!);
    latencies.length = 0;
    errors = 0;
    done = 0;

    const jobIds: string[] = [];
    for (let i = 0; i < JOBS; i++) {
      jobIds.push((await (await post('/v1/jobs', JSON.stringify({ datasetId: ds.id, config: QUICK }), 'application/json')).json()).id);
    }
    const t0 = performance.now();
    await drive(SECONDS);
    const elapsed = (performance.now() - t0) / 1000;
    const rssAfter = rssOf(api.process.pid!);

    const jobs = await waitFor('all queued jobs to finish', async () => {
      const js = await Promise.all(jobIds.map((id) => get(`/v1/jobs/${id}`)));
      return js.every((j) => ['succeeded', 'failed', 'cancelled'].includes(j.state)) ? js : null;
    }, 1_800_000, 1000);
    const succeeded = jobs.filter((j) => j.state === 'succeeded').length;
    const runTwice = jobs.filter((j) => j.attempts !== 1 || new Set(j.history.map((h: any) => `${h.phase}:${h.epoch}`)).size !== j.history.length).length;
    const models = (await get('/v1/models')).items.length;

    latencies.sort((a, b) => a - b);
    const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]?.toFixed(1);
    console.log(`| clients | seconds | requests | errors | requests/s | p50 ms | p99 ms | API RSS after warm-up MiB | API RSS after MiB | change |`);
    console.log(`| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |`);
    console.log(`| ${CLIENTS} | ${elapsed.toFixed(0)} | ${done} | ${errors} | ${(done / elapsed).toFixed(1)} | ${q(0.5)} | ${q(0.99)} | ${rssWarm.toFixed(0)} | ${rssAfter.toFixed(0)} | ${(((rssAfter - rssWarm) / rssWarm) * 100).toFixed(1)}% |`);
    console.log();
    console.log(`| jobs queued | workers | succeeded | lost (not finished) | run twice | models |`);
    console.log(`| --- | --- | --- | --- | --- | --- |`);
    console.log(`| ${JOBS} | ${WORKERS} | ${succeeded} | ${JOBS - jobs.length} | ${runTwice} | ${models} (${JOBS + 1} expected) |`);
  } finally {
    await Promise.all([api.stop(), ...workers.map((w) => w.stop())]);
    await Promise.all([redis.stop(), s3.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

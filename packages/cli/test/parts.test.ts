// The CLI's parts on their own: the folder zip, the SSE reader, the job view behind the bars, configs and tables.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import yauzl from 'yauzl';
import { openSource, zipFolder } from '../src/archive';
import { acceptConfig, type HistoryRow } from '@graft/contract';
import { GraftClient, ApiError, type Job } from '../src/client';
import { JobView } from '../src/job-view';
import { jobInfo, phaseInfo } from '../src/progress';
import { buildConfig } from '../src/commands/jobs';
import { bytes, cli, duration, table } from '../src/output';
import { metricsText, printOutcome, refitText, restoredEpoch } from '../src/report';
import { CliError } from '../src/errors';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-cli-parts-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const entriesOf = (zip: Buffer) =>
  new Promise<Record<string, Buffer>>((resolve, reject) => {
    yauzl.fromBuffer(zip, { lazyEntries: true }, (err, z) => {
      if (err) return reject(err);
      const out: Record<string, Buffer> = {};
      z.on('entry', (e: yauzl.Entry) =>
        z.openReadStream(e, (err2, s) => {
          if (err2) return reject(err2);
          buffer(s).then((b) => {
            out[e.fileName] = b;
            z.readEntry();
          }, reject);
        }),
      );
      z.on('end', () => resolve(out));
      z.readEntry();
    });
  });

describe('folder zip', () => {
  it('streams exactly the announced number of bytes, with every file but hidden ones, under relative paths', async () => {
    const root = path.join(dir, 'photos');
    const files: Record<string, Buffer> = {
      'train/cats/a.jpg': Buffer.alloc(3000, 1),
      'train/dogs/b.jpg': Buffer.alloc(5000, 2),
      'validation/cats/c.png': Buffer.from('png bytes'),
    };
    for (const [rel, data] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), data);
    }
    fs.writeFileSync(path.join(root, 'train', '.DS_Store'), 'junk');
    fs.mkdirSync(path.join(root, '.git'));
    fs.writeFileSync(path.join(root, '.git', 'HEAD'), 'ref');

    const z = await zipFolder(root);
    expect(z.files).toBe(3);
    const zip = await buffer(z.stream);
    expect(zip.length).toBe(z.size);
    const got = await entriesOf(zip);
    expect(Object.keys(got).sort()).toEqual(Object.keys(files).sort());
    for (const [rel, data] of Object.entries(files)) expect(got[rel]!.equals(data)).toBe(true);

    const src = await openSource(root);
    expect(src).toMatchObject({ kind: 'folder', name: 'photos', contentType: 'application/zip', size: z.size, files: 3 });
    src.stream.resume();
  });

  it('announces the exact size of a folder whose zip directory passes 64 KiB (Dogs vs Cats has 3,000 photos)', async () => {
    const root = path.join(dir, 'many');
    for (const c of ['cats', 'dogs']) {
      fs.mkdirSync(path.join(root, 'train', c), { recursive: true });
      for (let i = 0; i < 700; i++) fs.writeFileSync(path.join(root, 'train', c, `${c.slice(0, -1)}.${i}.jpg`), `${c} ${i}`);
    }
    const z = await zipFolder(root);
    expect(z.files).toBe(1400);
    const zip = await buffer(z.stream);
    expect(zip.length).toBe(z.size);
    const got = await entriesOf(zip);
    expect(Object.keys(got)).toHaveLength(1400);
    expect(got['train/dogs/dog.699.jpg']!.toString()).toBe('dogs 699');
  });

  it('sends archives as they are and refuses what is neither folder nor archive', async () => {
    const tgz = path.join(dir, 'set.tar.gz');
    fs.writeFileSync(tgz, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]));
    const src = await openSource(tgz);
    expect(src).toMatchObject({ kind: 'tar.gz', name: 'set', contentType: 'application/gzip', size: 8 });
    src.stream.destroy();
    const noExt = path.join(dir, 'upload');
    fs.writeFileSync(noExt, Buffer.concat([Buffer.from('PK\u0003\u0004'), Buffer.alloc(20)]));
    const z = await openSource(noExt);
    expect(z.kind).toBe('zip');
    z.stream.destroy();
    const txt = path.join(dir, 'notes.txt');
    fs.writeFileSync(txt, 'hello');
    await expect(openSource(txt)).rejects.toThrow(/not a zip, tar or tar\.gz archive/);
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    await expect(openSource(empty)).rejects.toBeInstanceOf(CliError);
  });
});

describe('client', () => {
  let server: http.Server;
  let url: string;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/v1/jobs/job_a/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        // CRLF line ends, a comment, a two-line data field, an event split across writes.
        res.write(': keep-alive\r\n\r\nevent: state\r\ndata: {"state":"running",\r\ndata: "phase":"preparing"}\r\n\r\n');
        res.write('event: epoch\ndata: {"phase":"training_head","ep');
        setTimeout(() => {
          res.write('och":1}\n\nevent: state\ndata: {"state":"succeeded"}\n\n');
          res.end();
        }, 20);
        return;
      }
      if (req.url === '/v1/jobs/job_missing') {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: { code: 'JOB_NOT_FOUND', message: "job 'job_missing' does not exist", details: { id: 'job_missing' } } }));
      }
      if (req.url === '/v1/datasets') {
        res.writeHead(502, { 'content-type': 'text/html' });
        return res.end('<html>bad gateway</html>');
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ auth: req.headers.authorization ?? null }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('reads Server-Sent Events however they are split', async () => {
    const got = [];
    for await (const ev of new GraftClient({ url }).events('job_a')) got.push(ev);
    expect(got).toEqual([
      { event: 'state', data: { state: 'running', phase: 'preparing' } },
      { event: 'epoch', data: { phase: 'training_head', epoch: 1 } },
      { event: 'state', data: { state: 'succeeded' } },
    ]);
  });

  it('turns error bodies into ApiError, and sends the key', async () => {
    const c = new GraftClient({ url: `${url}/`, key: 'k-123' });
    const err = await c.getJob('job_missing').catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 'JOB_NOT_FOUND', status: 404, details: { id: 'job_missing' } });
    const html = await c.listDatasets().catch((e) => e);
    expect(html).toMatchObject({ code: 'HTTP_502', status: 502 });
    expect(await c.request('GET', '/anything')).toEqual({ auth: 'Bearer k-123' });
    const down = await new GraftClient({ url: 'http://127.0.0.1:9' }).listJobs().catch((e) => e);
    expect(down).toMatchObject({ code: 'CONNECTION_FAILED', status: 0 });
  });
});

const job = (patch: Partial<Job>): Job => ({
  id: 'job_x',
  datasetId: 'ds_x',
  state: 'running',
  phase: 'training_head',
  progress: 0.3,
  epoch: 2,
  epochs: 4,
  etaSeconds: 20,
  config: acceptConfig({ method: 'fine_tuning', featureExtraction: { epochs: 4 }, fineTuning: { epochs: 3 } }, 224),
  history: [],
  test: null,
  validation: null,
  modelId: null,
  error: null,
  attempts: 1,
  backend: null,
  createdAt: '2024-01-01T00:00:00.000Z',
  startedAt: '2024-01-01T00:00:00.000Z',
  finishedAt: null,
  ...patch,
});
const row = (phase: HistoryRow['phase'], epoch: number, seconds = 2): HistoryRow => ({
  phase,
  epoch,
  attempt: 1,
  loss: 0.5,
  accuracy: 0.75,
  valLoss: 0.4,
  valAccuracy: 0.8,
  seconds,
});

describe('job view', () => {
  it('tracks each training phase from the events: epochs done, planned, time left', () => {
    const v = new JobView(job({}));
    expect(v.phases().map((p) => [p.phase, p.status, p.done, p.planned])).toEqual([
      ['training_head', 'running', 0, 4],
      ['fine_tuning', 'waiting', 0, 3],
    ]);
    v.apply({ event: 'epoch', data: row('training_head', 1) });
    v.apply({ event: 'epoch', data: row('training_head', 2) });
    // A resumed attempt's row for the same epoch replaces the first one.
    v.apply({ event: 'epoch', data: { ...row('training_head', 2, 4), attempt: 2 } });
    const head = v.phases()[0]!;
    expect(head).toMatchObject({ done: 2, status: 'running', seconds: 6, etaSeconds: 6 });
    expect(phaseInfo(head, true)).toBe('2/4 epochs │ loss 0.500 acc 0.750 │ val loss 0.400 acc 0.800 │ ETA 6s');
    expect(phaseInfo(head, false)).toBe('2/4 loss 0.500 acc 0.750 val_acc 0.800 ETA 6s');

    // Early stopping: fine-tuning starts after 3 of 4 head epochs.
    v.apply({ event: 'epoch', data: row('training_head', 3) });
    expect(v.apply({ event: 'progress', data: { phase: 'fine_tuning', epoch: 1, epochs: 3 } })).toEqual({ state: false, phase: true });
    const [h, ft] = v.phases();
    expect(h).toMatchObject({ status: 'done', stoppedEarly: true });
    expect(phaseInfo(h!, true)).toMatch(/stopped early, done in 8s$/);
    expect(ft).toMatchObject({ status: 'running', done: 0 });

    expect(v.apply({ event: 'state', data: { state: 'cancelled', phase: null } })).toEqual({ state: true, phase: true });
    expect(v.terminal).toBe(true);
    expect(v.phases().map((p) => p.status)).toEqual(['done', 'skipped']);
    expect(phaseInfo(v.phases()[1]!, false)).toBe('0/3 not run');
  });

  it('shows both training phases done while the job refits, fine-tuning stopped early', () => {
    const v = new JobView(job({}));
    for (let e = 1; e <= 4; e++) v.apply({ event: 'epoch', data: row('training_head', e) });
    v.apply({ event: 'epoch', data: row('fine_tuning', 1) });
    expect(v.phases().map((p) => p.status)).toEqual(['done', 'running']);
    v.apply({ event: 'progress', data: { phase: 'refitting', epoch: 1, epochs: 4 } });
    expect(v.phases().map((p) => [p.status, p.stoppedEarly])).toEqual([
      ['done', false],
      ['done', true],
    ]);
  });

  it('shows one phase for feature extraction and takes a snapshot with history', () => {
    const config = acceptConfig({ method: 'feature_extraction', featureExtraction: { epochs: 2 } }, 224);
    const v = new JobView(job({ config }));
    v.apply({ event: 'state', data: job({ config, state: 'succeeded', phase: null, history: [row('training_head', 1), row('training_head', 2)] }) });
    const phases = v.phases();
    expect(phases).toHaveLength(1);
    expect(phases[0]).toMatchObject({ status: 'done', done: 2, interrupted: false, stoppedEarly: false });
  });
});

describe('training config and output', () => {
  it('lays the flags over --config, inline or from a file', () => {
    expect(buildConfig({})).toBeUndefined();
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ method: 'scratch', featureExtraction: { learningRate: 0.01, epochs: 9 } }));
    expect(buildConfig({ config: file, epochs: 3, backbone: 'b', fineTuneEpochs: 0 })).toEqual({
      method: 'scratch',
      backbone: 'b',
      featureExtraction: { learningRate: 0.01, epochs: 3 },
      fineTuning: { epochs: 0 },
    });
    expect(buildConfig({ config: '{"inputSize": 96}', method: 'fine_tuning' })).toEqual({ inputSize: 96, method: 'fine_tuning' });
    expect(() => buildConfig({ config: '{oops' })).toThrow(/not valid JSON/);
    expect(() => buildConfig({ config: path.join(dir, 'missing.json') })).toThrow(/cannot read .*ENOENT/);
    expect(() => buildConfig({ config: '[1]' })).toThrow(/must be a JSON object/);
  });

  it('formats tables, sizes and durations', () => {
    expect(table(['NAME', 'N'], [['a', 5], ['long name', 12]], { align: ['left', 'right'] })).toBe('NAME        N\na           5\nlong name  12\n');
    expect([bytes(512), bytes(1536), bytes(5 * 1024 ** 2), bytes(null)]).toEqual(['512 B', '1.5 KiB', '5.0 MiB', '-']);
    expect([duration(5), duration(75), duration(3700), duration(null)]).toEqual(['5s', '1m 15s', '1h 01m', '-']);
  });
});

describe('metricsText', () => {
  it('gives the calibration error as trained and calibrated, where the metrics have it', () => {
    const m = { accuracy: 0.979, loss: 0.0594, calibration: { temperature: 0.7263, ece: 0.0142, calibratedEce: 0.0089, calibratedLoss: 0.05, reliability: [], calibratedReliability: [] } };
    expect(metricsText('test', m)).toBe('test: accuracy 97.9%  loss 0.0594\n  calibration error 1.4% as trained, 0.9% calibrated (temperature 0.726)\n');
    expect(metricsText('validation', { accuracy: 0.5, loss: 0.7 })).toBe('validation: accuracy 50.0%  loss 0.7000\n');
  });
});

describe('refitText', () => {
  it("says which epochs the refit trained again, and that validation figures are the chosen model's", () => {
    expect(refitText({ headEpochs: 13, fineTuningEpochs: 3, images: 2494 })).toBe(
      "the head's 13 epochs and fine-tuning's 3 epochs again on 2494 training and validation images: the model served; the validation figures are the model chosen before it",
    );
    expect(refitText({ headEpochs: 1, fineTuningEpochs: 0, images: 30 })).toMatch(/^the head's 1 epoch again on 30 training/);
    expect(refitText(null)).toBeNull();
    expect(refitText(undefined)).toBeNull();
  });
});

describe('restoredEpoch', () => {
  const row = (phase: HistoryRow['phase'], epoch: number, valLoss: number | null, valAccuracy: number | null): HistoryRow =>
    ({ phase, epoch, attempt: 1, loss: 0.5, accuracy: 0.8, valLoss, valAccuracy, seconds: 1 });
  const head = [row('training_head', 1, 0.4, 0.85), row('training_head', 2, 0.25, 0.9), row('training_head', 3, 0.3, 0.88)];

  it("names fine-tuning's epoch of lowest validation loss where it beat the head's best", () => {
    const history = [...head, row('fine_tuning', 1, 0.24, 0.91), row('fine_tuning', 2, 0.2, 0.915), row('fine_tuning', 3, 0.22, 0.902)];
    expect(restoredEpoch(history)).toEqual({ best: history[4], last: history[5] });
  });

  it("names the head's best epoch where no fine-tuning epoch beat it: the model stays as the head left it", () => {
    const history = [...head, row('fine_tuning', 1, 0.26, 0.91), row('fine_tuning', 2, 0.25, 0.93)];
    expect(restoredEpoch(history)).toEqual({ best: history[1], last: history[4] });
    expect(restoredEpoch(head)).toEqual({ best: head[1], last: head[2] });
  });

  it('says nothing when the last epoch is the one kept, or there was no validation', () => {
    expect(restoredEpoch([row('training_head', 1, 0.4, 0.8), row('training_head', 2, 0.3, 0.9)])).toBeNull();
    expect(restoredEpoch([...head.slice(0, 2), row('fine_tuning', 1, 0.2, 0.95)])).toBeNull();
    expect(restoredEpoch([row('training_head', 1, null, null), row('training_head', 2, null, null)])).toBeNull();
    expect(restoredEpoch([])).toBeNull();
  });

  it('is what the outcome of a finished job says', async () => {
    let text = '';
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => (text += c.toString()));
    const history = [...head, row('fine_tuning', 1, 0.26, 0.91), row('fine_tuning', 2, 0.27, 0.93)];
    printOutcome({ out: sink, err: sink }, job({ state: 'succeeded', history, refit: { headEpochs: 2, fineTuningEpochs: 0, images: 50 } }));
    await new Promise((r) => setImmediate(r));
    expect(text).toContain("validation chose the head's epoch 2 (lowest validation loss 0.2500, accuracy 90.0%), not the last, fine-tuning's epoch 2 (accuracy 93.0%)");
    expect(text).toContain("refit: the head's 2 epochs again on 50 training");
  });
});

describe('cli', () => {
  it('is `npx graft` under npx and `graft` otherwise', () => {
    expect(cli({ npm_command: 'exec' })).toBe('npx graft');
    expect(cli({})).toBe('graft');
  });
});

describe('jobInfo', () => {
  it('never shows less time left for the job than for the phase it is in', () => {
    // Fine-tuning: 1 of 3 epochs done at 60 s an epoch, so 120 s left in the phase; the job's estimate says 20 s.
    const view = new JobView(job({ phase: 'fine_tuning', etaSeconds: 20, history: [row('training_head', 1), row('fine_tuning', 1, 60)], config: acceptConfig({ method: 'fine_tuning', featureExtraction: { epochs: 1 }, fineTuning: { epochs: 3 } }, 224) }));
    expect(jobInfo(view)).toContain('ETA 2m 00s');
    view.job.etaSeconds = 300;
    expect(jobInfo(view)).toContain('ETA 5m 00s');
  });
});

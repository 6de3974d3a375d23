// End to end: the API and a worker as processes, a real Redis and S3; upload, train, follow, predict, cancel.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configEnv, testConfig } from './support/services';
import { patternDataset, zipOf, type Entry } from './support/images';
import { runService, startApi, waitFor, type Service } from './support/processes';
import { Storage, keys } from '@graft/storage';
import { JobStore, createRedis } from '@graft/queue';
import sharp from 'sharp';

const KEY = 'e2e-key-0123456789';
const H = { authorization: `Bearer ${KEY}` };

describe('end to end', () => {
  let api: Service & { url: string };
  let storage: Storage;
  let store: JobStore;
  let redis: ReturnType<typeof createRedis>;
  let worker: Service;
  let testImages: Entry[];
  let datasetId: string;

  beforeAll(async () => {
    const config = testConfig();
    storage = new Storage(config.s3);
    redis = createRedis(config.redisUrl);
    store = new JobStore(redis, config.queuePrefix);
    const env = { ...configEnv(config), GRAFT_API_KEYS: `e2e:${KEY}` };
    [api] = await Promise.all([startApi(env)]);
    worker = runService('services/worker/src/main.ts', env);
    const entries = await patternDataset({ train: 16, validation: 6, test: 10 }, 3);
    testImages = entries.filter((e) => e.path.startsWith('test/'));
    // Near-copies of training images filed under validation: leakage, which the first job leaves out.
    for (const kind of ['dots', 'stripes']) {
      const original = entries.find((e) => e.path === `train/${kind}/0.jpg`)!.data;
      entries.push({ path: `validation/${kind}/resaved.jpg`, data: await sharp(original).jpeg({ quality: 60 }).toBuffer() });
    }
    const res = await fetch(`${api.url}/v1/datasets?name=patterns`, {
      method: 'POST',
      headers: { ...H, 'content-type': 'application/zip' },
      body: new Uint8Array(await zipOf(entries.filter((e) => !e.path.startsWith('test/')))),
    });
    expect(res.status).toBe(201);
    datasetId = (await res.json()).id;
  });
  afterAll(async () => {
    await Promise.all([api?.stop(), worker?.stop()]);
    storage?.close();
    redis?.disconnect();
  });

  const get = async (path: string) => (await fetch(`${api.url}${path}`, { headers: H })).json();
  const createJob = async (config: object) => {
    const r = await fetch(`${api.url}/v1/jobs`, {
      method: 'POST',
      headers: { ...H, 'content-type': 'application/json' },
      body: JSON.stringify({ datasetId, config }),
    });
    expect(r.status).toBe(202);
    return (await r.json()).id as string;
  };

  /** A job of 400 epochs, once it has trained one (for the cancel tests). */
  const trainingLongJob = async () => {
    const jobId = await createJob({
      method: 'feature_extraction',
      backbone: 'mobilenet_v1_0.25_224',
      inputSize: 96,
      augmentation: { copies: 1 },
      featureExtraction: { epochs: 400, learningRate: 0.0001 },
      earlyStopping: false,
    });
    await waitFor('the job to train', async () => {
      const j = await get(`/v1/jobs/${jobId}`);
      return j.state === 'running' && j.history.length >= 1;
    }, 120_000);
    return jobId;
  };

  it('trains a frozen-base classifier, streams its events, and serves predictions', async () => {
    const jobId = await createJob({
      method: 'feature_extraction',
      backbone: 'mobilenet_v1_0.25_224',
      inputSize: 96,
      augmentation: { copies: 1 },
      featureExtraction: { epochs: 6, learningRate: 0.001 },
      earlyStopping: false,
      dropLeaked: true,
    });
    // Follow the job over SSE until its final state.
    const events: { event: string; data: any }[] = [];
    const sse = await fetch(`${api.url}/v1/jobs/${jobId}/events`, { headers: H });
    expect(sse.headers.get('content-type')).toContain('text/event-stream');
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of sse.body as any as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (ev && data) events.push({ event: ev, data: JSON.parse(data) });
      }
    }
    const last = events.at(-1)!;
    expect(last.event, worker.output().slice(-3000)).toBe('state');
    expect(last.data.state, worker.output().slice(-3000)).toBe('succeeded');
    expect(events.filter((e) => e.event === 'epoch').length).toBeGreaterThanOrEqual(1);
    expect(events.some((e) => e.event === 'progress')).toBe(true);

    const job = await get(`/v1/jobs/${jobId}`);
    expect(job.state).toBe('succeeded');
    expect(job.progress).toBe(1);
    expect(job.attempts).toBe(1);
    expect(job.history.length).toBe(6);
    expect(job.history[0]).toMatchObject({ phase: 'training_head', epoch: 1, attempt: 1 });
    expect(job.history[0].valAccuracy).not.toBeNull();
    expect(job.modelId).toMatch(/^mdl_/);
    // The model served was refit on training and validation images for the epochs the head chose.
    const best = job.history.reduce((a: any, r: any) => (r.valLoss < a.valLoss ? r : a));
    expect(job.refit).toEqual({ headEpochs: best.epoch, fineTuningEpochs: 0, images: expect.any(Number) });
    expect(events.some((e) => e.event === 'progress' && e.data.phase === 'refitting')).toBe(true);
    // The leaked validation images the dataset's health report names are the ones the job left out.
    const health = await get(`/v1/datasets/${datasetId}/health`);
    const leakedPaths = health.leakage.map((l: any) => l.images[1].path);
    expect(leakedPaths).toEqual(expect.arrayContaining(['validation/dots/resaved.jpg', 'validation/stripes/resaved.jpg']));
    expect(job.dropped).toEqual({ leaked: health.summary.leakedImages });

    const model = await get(`/v1/models/${job.modelId}`);
    expect(model.labels).toEqual(['dots', 'stripes']);
    expect(model.jobId).toBe(jobId);
    const files = (await get(`/v1/models/${job.modelId}/artifacts`)).items.map((f: any) => f.name);
    expect(files).toEqual(expect.arrayContaining(['model.json', 'graft.json', 'metrics.json']));
    const graft = await get(`/v1/models/${job.modelId}/artifacts/graft.json`);
    expect(graft.labels).toEqual(['dots', 'stripes']);
    // Calibrated on the validation images: the temperature in graft.json, the error before and after in the metrics.
    expect(graft.calibration).toMatchObject({ fittedOn: 'validation', images: 12 });
    expect(graft.calibration.temperature).toBeGreaterThan(0);
    expect(model.metrics.validation.calibration.temperature).toBe(graft.calibration.temperature);
    expect(model.metrics.validation.calibration.reliability).toHaveLength(15);
    expect(model.metrics.validation.calibration.calibratedEce).toBeGreaterThanOrEqual(0);
    expect(files).toContain('ood-features.bin');
    // int8: checked against fp32 on the 12 validation images; model.int8.onnx is there exactly when it was kept.
    expect(graft.int8).toMatchObject({ images: 12, minAgreement: 0.995, quantization: expect.objectContaining({ weightBits: 8 }) });
    expect(graft.int8.agreement).toBeGreaterThan(0);
    expect(graft.int8.used).toBe(graft.int8.reason === null);
    expect(files.includes('model.int8.onnx')).toBe(graft.int8.used);
    expect((await get(`/v1/models/${job.modelId}/artifacts/metrics.json`)).int8).toEqual(graft.int8);
    // The record says it too, without the quantization's details.
    const { used, reason, agreement, accuracyFp32, accuracyInt8, images } = graft.int8;
    expect(model.int8).toEqual({ used, reason, agreement, accuracyFp32, accuracyInt8, images });

    // Each validation image as the model classifies it, making up the validation confusion matrix.
    const perImage = await get(`/v1/jobs/${jobId}/predictions?split=validation`);
    expect(perImage).toMatchObject({ jobId, modelId: job.modelId, split: 'validation', labels: ['dots', 'stripes'] });
    expect(perImage.items).toHaveLength(12);
    const cm = [[0, 0], [0, 0]];
    for (const it of perImage.items) {
      expect(it.imageId).toMatch(/\S/);
      expect(it.probabilities.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 4);
      cm[perImage.labels.indexOf(it.label)]![perImage.labels.indexOf(it.predicted)]! += 1;
    }
    expect(cm).toEqual(model.metrics.validation.confusionMatrix);
    expect((await get(`/v1/jobs/${jobId}/predictions?split=test`)).items).toEqual([]);
    const badSplit = await fetch(`${api.url}/v1/jobs/${jobId}/predictions?split=train`, { headers: H });
    expect(badSplit.status).toBe(400);
    expect(graft.outOfDistribution).toMatchObject({ method: 'knn', featureSize: 256 });

    // Held-out images the training never saw, one request each (raw body), then all at once (multipart).
    let right = 0;
    for (const img of testImages) {
      const r = await fetch(`${api.url}/v1/models/${job.modelId}/predict?topK=1`, {
        method: 'POST',
        headers: { ...H, 'content-type': 'image/jpeg' },
        body: new Uint8Array(img.data),
      });
      expect(r.status).toBe(200);
      const body = await r.json();
      expect(body.results).toHaveLength(1);
      expect(body.results[0].predictions).toHaveLength(1);
      expect(body.timing.totalMs).toBeGreaterThan(0);
      if (img.path.includes(`/${body.results[0].predictions[0].label}/`)) right++;
      const ood = body.results[0].outOfDistribution;
      expect(ood.score).toBeGreaterThanOrEqual(0);
      expect(ood.flagged).toBe(ood.score > graft.outOfDistribution.threshold);
    }
    expect(right / testImages.length).toBeGreaterThanOrEqual(0.8);

    // Every image flagged under a threshold of 0; the flip average is a probability too.
    const strict = await fetch(`${api.url}/v1/models/${job.modelId}/predict?oodThreshold=0&tta=flip`, {
      method: 'POST',
      headers: { ...H, 'content-type': 'image/jpeg' },
      body: new Uint8Array(testImages[0]!.data),
    });
    const strictBody = await strict.json();
    expect(strict.status, JSON.stringify(strictBody)).toBe(200);
    expect(strictBody.results[0].outOfDistribution.flagged).toBe(true);
    expect(strictBody.results[0].predictions.reduce((s: number, p: any) => s + p.probability, 0)).toBeCloseTo(1, 4);
    // Grad-CAM of one image: the top class by default, or the class asked for.
    const explain = (query: string, b: BodyInit, type?: string) =>
      fetch(`${api.url}/v1/models/${job.modelId}/explain${query}`, { method: 'POST', headers: type ? { ...H, 'content-type': type } : H, body: b });
    const ex = await explain('', new Uint8Array(testImages[0]!.data), 'image/jpeg');
    const exBody = await ex.json();
    expect(ex.status, JSON.stringify(exBody)).toBe(200);
    expect(['dots', 'stripes']).toContain(exBody.label);
    expect(exBody.heatmap.values).toHaveLength(exBody.heatmap.width * exBody.heatmap.height);
    expect(exBody.heatmap.values.every((v: number) => v >= 0 && v <= 1)).toBe(true);
    expect(exBody.overlay).toMatch(/^data:image\/png;base64,/);
    const asked = await (await explain('?label=stripes', new Uint8Array(testImages[0]!.data), 'image/jpeg')).json();
    expect(asked.label).toBe('stripes');
    const unknownLabel = await explain('?label=cats', new Uint8Array(testImages[0]!.data), 'image/jpeg');
    expect(unknownLabel.status).toBe(400);
    expect((await unknownLabel.json()).error.message).toContain('cats');
    const two = new FormData();
    for (const img of testImages.slice(0, 2)) two.append('image', new Blob([new Uint8Array(img.data)], { type: 'image/jpeg' }), 'x.jpg');
    expect((await explain('', two)).status).toBe(400);

    const badQuery = await fetch(`${api.url}/v1/models/${job.modelId}/predict?tta=rotate`, {
      method: 'POST',
      headers: { ...H, 'content-type': 'image/jpeg' },
      body: new Uint8Array(testImages[0]!.data),
    });
    expect(badQuery.status).toBe(400);

    const form = new FormData();
    for (const img of testImages.slice(0, 3)) form.append('image', new Blob([new Uint8Array(img.data)], { type: 'image/jpeg' }), 'x.jpg');
    const multi = await (await fetch(`${api.url}/v1/models/${job.modelId}/predict`, { method: 'POST', headers: H, body: form })).json();
    expect(multi.results).toHaveLength(3);
    const probs = multi.results[0].predictions.map((p: any) => p.probability);
    expect(probs.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 4);

    const b64 = await fetch(`${api.url}/v1/models/${job.modelId}/predict`, {
      method: 'POST',
      headers: { ...H, 'content-type': 'application/json' },
      body: JSON.stringify({ images: [testImages[0].data.toString('base64'), Buffer.from('garbage').toString('base64')] }),
    });
    expect(b64.status).toBe(400);
    const err = await b64.json();
    expect(err.error.code).toBe('INVALID_IMAGE');
    expect(err.error.details.index).toBe(1);
  });

  it('cancels a running job on the worker within seconds and removes its partial artifacts', async () => {
    const jobId = await trainingLongJob();
    const asked = Date.now();
    const r = await fetch(`${api.url}/v1/jobs/${jobId}/cancel`, { method: 'POST', headers: H });
    expect(r.status).toBe(202);
    await waitFor('the job to be cancelled', async () => (await get(`/v1/jobs/${jobId}`)).state === 'cancelled', 10_000, 100);
    expect(Date.now() - asked).toBeLessThan(5_000);
    const job = await get(`/v1/jobs/${jobId}`);
    expect(job.modelId).toBeNull();
    const none = await fetch(`${api.url}/v1/jobs/${jobId}/predictions`, { headers: H });
    expect(none.status).toBe(409);
    expect((await none.json()).error.code).toBe('JOB_NOT_SUCCEEDED');
    expect((await fetch(`${api.url}/v1/models/mdl_${jobId.slice(4)}`, { headers: H })).status).toBe(404);
    // Partial artifacts and checkpoints are gone.
    const left: string[] = [];
    for await (const o of storage.listObjects(keys.job('e2e', jobId))) left.push(o.key);
    for await (const o of storage.listObjects(keys.model('e2e', `mdl_${jobId.slice(4)}`))) left.push(o.key);
    expect(left).toEqual([]);
  });

  it('cancels a running job whose cancel message never reached the worker, from its record', async () => {
    const jobId = await trainingLongJob();
    // What POST /cancel writes, without the message on the cancel channel (pub/sub loses messages sent while a
    // subscriber reconnects).
    await store.update(jobId, { cancelRequested: true });
    expect(await store.cancelRequested(jobId)).toBe(true);
    await waitFor('the job to be cancelled', async () => (await get(`/v1/jobs/${jobId}`)).state === 'cancelled', 30_000, 100);
    expect(worker.output()).toMatch(new RegExp(`"jobId":"${jobId}","how":"record","msg":"cancelling job"`));
  });

  it('fails a job once, without retries, when its failure is permanent, with a message a user can act on', async () => {
    const up = await fetch(`${api.url}/v1/datasets?name=doomed`, {
      method: 'POST',
      headers: { ...H, 'content-type': 'application/zip' },
      body: new Uint8Array(await zipOf(await patternDataset({ train: 3 }, 9))),
    });
    const ds = await up.json();
    // The dataset's image index disappears from storage behind the service's back.
    await storage.deleteKeys([keys.datasetIndex('e2e', ds.id)]);
    const jobId = (await (await fetch(`${api.url}/v1/jobs`, {
      method: 'POST',
      headers: { ...H, 'content-type': 'application/json' },
      body: JSON.stringify({ datasetId: ds.id, config: { method: 'feature_extraction', backbone: 'mobilenet_v1_0.25_224' } }),
    })).json()).id;
    const job = await waitFor('the job to fail', async () => {
      const j = await get(`/v1/jobs/${jobId}`);
      return j.state === 'failed' ? j : null;
    }, 60_000);
    expect(job.attempts).toBe(1);
    expect(job.error.code).toBe('DATASET_CORRUPT');
    expect(job.error.message).toContain(ds.id);
  });
});

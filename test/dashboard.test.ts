// The dashboard in headless Chromium against the real API and worker: enter the key, upload a dataset, start a
// job from the form, follow it live to its end, and check that the curves and the confusion matrix are drawn
// and the playground predicts.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { isTerminal } from '@graft/contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configEnv, testConfig } from './support/services';
import sharp from 'sharp';
import { patternDataset, patternImage, sceneImage, zipOf } from './support/images';
import { root, runService, startApi, waitFor, type Service } from './support/processes';
import { chromiumMissing, launchBrowser, type Browser } from './support/browser';

const KEY = 'dashboard-key-0123456789';
const H = { authorization: `Bearer ${KEY}` };
const SCREENSHOT = '/tmp/graft-dashboard.png';
const missing = chromiumMissing();
if (missing) console.warn(`dashboard browser tests skipped: ${missing}`);

/** Pixels of a canvas near a colour, counted in the page. */
async function colouredPixels(b: Browser, selector: string, hex: string): Promise<number> {
  return b.page.evaluate(
    ([sel, colour]) => {
      const canvas = document.querySelector(sel) as HTMLCanvasElement | null;
      if (!canvas) return -1;
      const { data } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
      const want = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
      let n = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3]! > 200 && Math.abs(data[i]! - want[0]!) + Math.abs(data[i + 1]! - want[1]!) + Math.abs(data[i + 2]! - want[2]!) < 60) n++;
      }
      return n;
    },
    [selector, hex] as const,
  );
}

/** The confusion matrix and per-class rows on the page are those of the metrics, or absent where they have none. */
async function assertMatrix(page: Browser['page'], metrics: { labels?: string[]; confusionMatrix?: number[][] }) {
  const cells = await page.locator('.cm-cell').evaluateAll((tds) =>
    tds.map((td) => ({ r: Number(td.getAttribute('data-row')), c: Number(td.getAttribute('data-col')), n: Number(td.textContent) })),
  );
  if (!metrics.confusionMatrix) return void expect(cells).toEqual([]);
  expect(cells).toHaveLength(metrics.labels!.length ** 2);
  for (const { r, c, n } of cells) expect(n, `cell ${r},${c}`).toBe(metrics.confusionMatrix[r]![c]);
  expect(await page.locator('.per-class tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-class')))).toEqual(metrics.labels);
}

describe.skipIf(!!missing)(`dashboard in Chromium${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let api: Service & { url: string };
  let worker: Service;
  let b: Browser;

  beforeAll(async () => {
    // Tests the dashboard as the source stands now, not an older build.
    execFileSync(process.execPath, [path.join(root, 'packages/dashboard/scripts/build.mjs')], { cwd: root, stdio: 'pipe', env: { ...process.env, CI: '1' } });
    const env = { ...configEnv(testConfig()), GRAFT_API_KEYS: `dash:${KEY}` };
    api = await startApi(env);
    worker = runService('services/worker/src/main.ts', env);
    b = await launchBrowser();
  }, 180_000);
  afterAll(async () => {
    await b?.close();
    await Promise.all([api?.stop(), worker?.stop()]);
  });

  it('follows a job from upload to its curves, confusion matrix and predictions', { timeout: 420_000 }, async () => {
    const { page } = b;
    const api$ = async (p: string) => (await fetch(`${api.url}${p}`, { headers: H })).json();

    // Without a key the API answers 401 and the page asks for one.
    await page.goto(`${api.url}/`);
    await page.locator('#api-key').fill(KEY);
    await page.getByRole('button', { name: 'Save key' }).click();
    await page.locator('.banner').waitFor({ state: 'detached' });
    await page.getByText('No jobs yet').waitFor();
    expect(await page.evaluate(() => localStorage.getItem('graft.apiKey'))).toBe(KEY);

    // Upload a dataset without a test split through the form, as the README's walkthrough does.
    await page.getByRole('link', { name: 'Datasets', exact: true }).click();
    // One validation image is labelled wrong (stripes filed under dots), so the model gets it "wrong".
    const mislabelled = { path: 'validation/dots/mislabelled.jpg', data: await patternImage('stripes', 777) };
    const zip = await zipOf([...(await patternDataset({ train: 12, validation: 6 }, 11)), mislabelled]);
    await page.locator('input[type=file][name=file]').setInputFiles({ name: 'patterns.zip', mimeType: 'application/zip', buffer: zip });
    await page.locator('#dataset-name').fill('patterns');
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.waitForURL(/\/ui\/datasets\/ds_[a-z0-9]+$/);
    const datasetId = /ds_[a-z0-9]+/.exec(page.url())![0];
    const counts = page.locator('.class-counts tr[data-class="dots"]');
    await counts.waitFor();
    expect(await counts.locator('td[data-split="train"]').textContent()).toBe('12');
    expect(await counts.locator('td[data-split="validation"]').textContent()).toBe('7');
    expect(await counts.locator('td[data-split="test"]').count()).toBe(0);
    await page.locator('.thumb-class[data-class="stripes"] img.thumb').first().waitFor();
    const thumbs = await page.locator('img.thumb').evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth));
    expect(thumbs.length).toBeGreaterThanOrEqual(4);
    expect(thumbs.every((w) => w === 96)).toBe(true);
    await page.screenshot({ path: '/tmp/graft-dashboard-dataset.png', fullPage: true });

    // Start a quick job from the form.
    await page.getByRole('link', { name: 'Train on it' }).click();
    await page.waitForURL(/\/ui\/jobs\/new/);
    await page.locator('#job-backbone option[value="mobilenet_v1_0.25_224"]').waitFor({ state: 'attached' });
    expect(await page.locator('#job-dataset').inputValue()).toBe(datasetId);
    await page.locator('#job-method').selectOption('feature_extraction');
    await page.locator('#job-backbone').selectOption('mobilenet_v1_0.25_224');
    // Left empty, the input size is the backbone's training size, as the API resolves it.
    const listed = (await api$('/v1/backbones')).find((x: any) => x.name === 'mobilenet_v1_0.25_224');
    expect(await page.locator('#job-input-size').getAttribute('placeholder')).toBe(String(listed.trainingInputSize));
    await page.locator('#job-head-epochs').fill('5');
    await page.locator('#job-input-size').fill('96');
    await page.locator('#job-extra').fill('{"augmentation": {"copies": 1}, "featureExtraction": {"learningRate": 0.001}}');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.waitForURL(/\/ui\/jobs\/job_[a-z0-9]+$/);
    const jobId = /job_[a-z0-9]+/.exec(page.url())![0];
    const created = await api$(`/v1/jobs/${jobId}`);
    expect(created.config).toMatchObject({ method: 'feature_extraction', backbone: 'mobilenet_v1_0.25_224', inputSize: 96, featureExtraction: { epochs: 5, learningRate: 0.001 } });

    // The page follows the job live over SSE, with no reload, until it has succeeded.
    await page.locator('.job-page[data-state="running"]').waitFor({ timeout: 180_000 });
    await page.locator('.job-page[data-state="succeeded"], .job-page[data-state="failed"]').waitFor({ timeout: 300_000 });
    const job = await api$(`/v1/jobs/${jobId}`);
    expect(job.state, `${job.error?.message}\n${worker.output().slice(-3000)}`).toBe('succeeded');
    expect(await page.evaluate(() => performance.getEntriesByType('navigation').length)).toBe(1);
    expect(job.history).toHaveLength(5);
    expect(job.test).toBeNull();
    expect(job.validation.accuracy).toBeGreaterThanOrEqual(0);

    // Curves: one point per epoch, and lines of both colours drawn on both charts (a line across the plot has
    // hundreds of pixels of its colour; the point markers alone have a few dozen).
    for (const metric of ['loss', 'accuracy']) {
      const chart = `.chart[data-metric="${metric}"]`;
      await page.locator(`${chart}[data-points="5"]`).waitFor();
      const canvas = `${chart} canvas`;
      expect(await colouredPixels(b, canvas, '#2563eb'), `${metric}: training line`).toBeGreaterThan(250);
      expect(await colouredPixels(b, canvas, '#ea580c'), `${metric}: validation line`).toBeGreaterThan(250);
    }

    // The job trained its chosen epochs again on the training and validation images before evaluating (config
    // `refit`, on by default): a step of its own, done, and what it trained among the job's figures.
    expect(job.refit).toMatchObject({ headEpochs: job.history.reduce((b: any, r: any) => (r.valLoss < b.valLoss ? r : b)).epoch, fineTuningEpochs: 0 });
    expect(await page.locator('.steps .step').allTextContents()).toEqual(['Preparing', 'Extracting features', 'Training the head', 'Refitting on all images', 'Evaluating', 'Exporting']);
    expect(await page.locator('.steps .step.done').count()).toBe(6);
    const refitStat = page.locator('.progress-card .stat', { hasText: 'Refit' });
    expect(await refitStat.locator('.stat-value').textContent()).toBe(`${job.refit.images} images`);
    expect(await refitStat.locator('.stat-hint').textContent()).toBe(`head ${job.refit.headEpochs} epoch${job.refit.headEpochs === 1 ? '' : 's'}`);

    // With no test split the evaluation card shows the validation images, as the job recorded them: the figures of
    // the model chosen on them, before the refit.
    const evaluation = page.locator('.evaluation');
    await evaluation.getByRole('heading', { name: 'Validation set' }).waitFor();
    expect(await evaluation.locator('.card-actions').textContent()).toContain('before the refit');
    expect(await evaluation.locator('.stat').first().textContent()).toContain(`${(job.validation.accuracy * 100).toFixed(1)}%`);
    await assertMatrix(page, job.validation);
    // The reliability diagram, and a cell of the matrix opening the gallery of its images.
    await evaluation.locator('.reliability svg[aria-label="Reliability diagram"]').waitFor();
    const diag = job.validation.confusionMatrix[0][0] ? { r: 0, c: 0 } : { r: 1, c: 1 };
    await page.locator(`.cm-cell[data-row="${diag.r}"][data-col="${diag.c}"]`).click();
    const gallery = page.locator(`.gallery[data-label="${job.validation.labels[diag.r]}"][data-predicted="${job.validation.labels[diag.c]}"]`);
    await gallery.locator('li').first().waitFor();
    expect(await gallery.locator('li').count()).toBe(job.validation.confusionMatrix[diag.r][diag.c]);
    // An image of the gallery explained: the Grad-CAM overlay of its class, the one the API draws for that image.
    const first = gallery.locator('li').first();
    const imageId = await first.getAttribute('data-image');
    await first.getByRole('button', { name: 'Explain' }).click();
    const shownLabel = job.validation.labels[diag.c];
    const overlay = gallery.locator(`.gallery-explanation[data-image="${imageId}"] .explanation[data-label="${shownLabel}"] img`);
    await overlay.waitFor({ timeout: 60_000 });
    expect(await gallery.locator('.gallery-explanation .explanation').count()).toBe(1);
    expect(await overlay.evaluate((i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth)).toBeGreaterThan(0);
    const original = await fetch(`${api.url}/v1/datasets/${datasetId}/images/${imageId}`, { headers: H });
    expect(original.status).toBe(200);
    const byApi = await (
      await fetch(`${api.url}/v1/models/${job.modelId}/explain?label=${shownLabel}`, {
        method: 'POST',
        headers: { ...H, 'content-type': original.headers.get('content-type')! },
        body: new Uint8Array(await original.arrayBuffer()),
      })
    ).json();
    expect(await overlay.getAttribute('src')).toBe(byApi.overlay);
    // The mislabelled image, predicted stripes, shows the map of the class predicted and that of its true class.
    const [dots, stripes] = [job.validation.labels.indexOf('dots'), job.validation.labels.indexOf('stripes')];
    expect(job.validation.confusionMatrix[dots][stripes]).toBeGreaterThan(0);
    await page.locator(`.cm-cell[data-row="${dots}"][data-col="${stripes}"]`).click();
    const wrong = page.locator('.gallery[data-label="dots"][data-predicted="stripes"]');
    await wrong.locator('li', { hasText: 'validation/dots/mislabelled.jpg' }).getByRole('button', { name: 'Explain' }).click();
    for (const l of ['stripes', 'dots']) await wrong.locator(`.gallery-explanation .explanation[data-label="${l}"] img`).waitFor({ timeout: 60_000 });
    expect(await wrong.locator('.gallery-explanation .explanation figcaption').allTextContents()).toEqual([
      expect.stringMatching(/^Predicted class: where the model looks for stripes/),
      expect.stringMatching(/^True class: where the model looks for dots/),
    ]);
    expect(b.pageErrors).toEqual([]);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // The playground shows the model's top classes for an image, as the API ranks them.
    await page.getByRole('link', { name: 'Try the model' }).click();
    await page.waitForURL(/\/ui\/models\/mdl_[a-z0-9]+$/);
    const image = await patternImage('stripes', 424242);
    await page.locator('input[type=file][name=image]').setInputFiles({ name: 'stripes.jpg', mimeType: 'image/jpeg', buffer: image });
    await page.locator('.pred-list li').nth(1).waitFor();
    const shown = await page.locator('.pred-list li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-label')));
    const predicted = await (
      await fetch(`${api.url}/v1/models/${job.modelId}/predict`, { method: 'POST', headers: { ...H, 'content-type': 'image/jpeg' }, body: new Uint8Array(image) })
    ).json();
    expect(shown).toEqual(predicted.results[0].predictions.map((p: any) => p.label));
    // Where the model looks for the top class, then for the class clicked.
    await page.locator(`.explanation[data-label="${shown[0]}"] img`).waitFor();
    await page.locator(`.pred-list li[data-label="${shown[1]}"]`).click();
    await page.locator(`.explanation[data-label="${shown[1]}"] img`).waitFor();
    expect(await page.locator('[data-ood]').count()).toBe(1);
    await page.screenshot({ path: '/tmp/graft-dashboard-playground.png', fullPage: true });

    // The jobs list shows the finished job.
    await page.getByRole('link', { name: 'Jobs', exact: true }).click();
    await page.locator(`tr[data-job="${jobId}"] .badge[data-state="succeeded"]`).waitFor();
    await page.locator(`tr[data-job="${jobId}"]`).getByRole('link', { name: 'patterns' }).waitFor();
    await page.screenshot({ path: '/tmp/graft-dashboard-jobs.png', fullPage: true });
    expect(b.pageErrors).toEqual([]);
  });
  it('renders the page of every kind of job without a page error', { timeout: 420_000 }, async () => {
    const { page } = b;
    const call = async (method: string, p: string, body?: unknown, type = 'application/json') => {
      const res = await fetch(`${api.url}${p}`, {
        method,
        headers: { ...H, ...(body ? { 'content-type': type } : {}) },
        body: body === undefined ? undefined : type === 'application/json' ? JSON.stringify(body) : (body as BodyInit),
      });
      const json = await res.json();
      expect(res.status, JSON.stringify(json)).toBeLessThan(300);
      return json;
    };
    const withTest = await call('POST', '/v1/datasets?name=kinds-test-split', new Uint8Array(await zipOf(await patternDataset({ train: 12, validation: 4, test: 6 }, 5))), 'application/zip');
    const quick = { backbone: 'mobilenet_v1_0.25_224', inputSize: 96, augmentation: { copies: 1 }, featureExtraction: { epochs: 2, learningRate: 0.001 } };
    const jobs = {
      test: await call('POST', '/v1/jobs', { datasetId: withTest.id, config: { ...quick, method: 'feature_extraction' } }),
      scratch: await call('POST', '/v1/jobs', { datasetId: withTest.id, config: { method: 'scratch', inputSize: 64, featureExtraction: { epochs: 2 } } }),
      failed: await call('POST', '/v1/jobs', { datasetId: withTest.id, config: { ...quick, method: 'fine_tuning', fineTuning: { fromLayer: 'no_such_layer', epochs: 1 } } }),
      cancelled: await call('POST', '/v1/jobs', { datasetId: withTest.id, config: { ...quick, method: 'fine_tuning', featureExtraction: { epochs: 200 } } }),
    };
    await call('POST', `/v1/jobs/${jobs.cancelled.id}/cancel`);
    const want = { test: 'succeeded', scratch: 'succeeded', failed: 'failed', cancelled: 'cancelled' } as const;
    for (const [kind, created] of Object.entries(jobs) as [keyof typeof want, { id: string }][]) {
      const job = await waitFor(`${kind} job to end`, async () => {
        const j = await call('GET', `/v1/jobs/${created.id}`);
        return isTerminal(j.state) ? j : null;
      }, 300_000, 500);
      expect(job.state, `${kind}: ${job.error?.message}`).toBe(want[kind]);
      await page.goto(`${api.url}/ui/jobs/${job.id}`);
      await page.locator(`.job-page[data-state="${job.state}"]`).waitFor();
      expect(await page.title()).toBe(`Job ${job.id} · Graft`);
      if (job.state === 'succeeded') {
        await page.locator('.evaluation').getByRole('heading', { name: 'Test set' }).waitFor();
        await assertMatrix(page, job.test);
        await page.locator(`.chart[data-metric="loss"][data-points="${job.history.length}"]`).waitFor();
      }
      if (job.state === 'failed') expect(await page.locator('.callout-error').textContent()).toContain(job.error.code);
      await page.screenshot({ path: `/tmp/graft-dashboard-job-${kind}.png`, fullPage: true });
      expect(b.pageErrors, `${kind} job page`).toEqual([]);
    }
  });

  it('shows a dataset\'s leakage pairs and near-identical groups as thumbnails side by side, named by path', { timeout: 120_000 }, async () => {
    const { page } = b;
    const entries = [];
    for (const split of ['train', 'validation']) {
      for (const c of ['cats', 'dogs']) for (let i = 0; i < 4; i++) entries.push({ path: `${split}/${c}/${i}.jpg`, data: await sceneImage(entries.length + 500) });
    }
    const original = entries[0]!.data;
    entries.push({ path: 'validation/cats/copy.jpg', data: await sharp(original).resize(200).jpeg({ quality: 70 }).toBuffer() });
    entries.push({ path: 'train/dogs/copy.jpg', data: await sharp(entries[1]!.data).jpeg({ quality: 60 }).toBuffer() });
    const res = await fetch(`${api.url}/v1/datasets?name=planted-copies`, {
      method: 'POST',
      headers: { ...H, 'content-type': 'application/zip' },
      body: new Uint8Array(await zipOf(entries)),
    });
    expect(res.status).toBe(201);
    const ds = await res.json();
    await page.goto(`${api.url}/`);
    await page.evaluate((key) => localStorage.setItem('graft.apiKey', key), KEY);
    await page.goto(`${api.url}/ui/datasets/${ds.id}`);

    const pair = page.locator('.leak-pair');
    await pair.locator('img.thumb').nth(1).waitFor();
    expect(await pair.count()).toBe(1);
    expect(await pair.locator('.dup-image').evaluateAll((f) => f.map((x) => x.getAttribute('data-path')))).toEqual(['train/cats/0.jpg', 'validation/cats/copy.jpg']);
    const group = page.locator('.dup-group.mixed-labels');
    await group.locator('img.thumb').nth(1).waitFor();
    expect((await group.locator('.dup-image').evaluateAll((f) => f.map((x) => x.getAttribute('data-path')))).sort()).toEqual(['train/cats/1.jpg', 'train/dogs/copy.jpg']);
    const widths = await page.locator('.dup-image img.thumb').evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth));
    expect(widths).toEqual([160, 160, 160, 160]);
    expect(await page.locator('.findings li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-kind')))).toEqual(
      expect.arrayContaining(['leakage', 'conflicting_labels']),
    );
    await page.screenshot({ path: '/tmp/graft-dashboard-health.png', fullPage: true });

    // The new-job form offers to leave the leaked image out, and the job it starts asks for that.
    await page.getByRole('link', { name: 'Train on it' }).click();
    await page.waitForURL(/\/ui\/jobs\/new/);
    const drop = page.locator('#job-drop-leaked');
    await drop.waitFor();
    expect(await page.locator('label[for="job-drop-leaked"]').textContent()).toContain('Leave out the leaked validation or test image (near-copies');
    await drop.check();
    await page.locator('#job-method').selectOption('feature_extraction');
    await page.locator('#job-backbone option[value="mobilenet_v1_0.25_224"]').waitFor({ state: 'attached' });
    await page.locator('#job-backbone').selectOption('mobilenet_v1_0.25_224');
    await page.locator('#job-head-epochs').fill('1');
    await page.locator('#job-input-size').fill('96');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.waitForURL(/\/ui\/jobs\/job_[a-z0-9]+$/);
    const jobId = /job_[a-z0-9]+/.exec(page.url())![0];
    const job = await (await fetch(`${api.url}/v1/jobs/${jobId}`, { headers: H })).json();
    expect(job.config.dropLeaked).toBe(true);
    await fetch(`${api.url}/v1/jobs/${jobId}/cancel`, { method: 'POST', headers: H });
    expect(b.pageErrors).toEqual([]);
  });
});

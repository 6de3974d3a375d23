// GET /v1/jobs/:id/curves.svg against a real Redis and S3-protocol server, through app.inject(); the pictures
// are parsed as XML and rendered by librsvg (through sharp).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import fs from 'node:fs';
import { acceptConfig, type HistoryRow, type JobRecord } from '@graft/contract';
import { queuedJobRecord } from '@graft/queue';
import { buildApp } from '../src/app';
import { createDeps, type ApiDeps } from '../src/deps';
import { newId } from '../src/ids';
import { niceAxis, epochTicks, formatTick } from '../src/curves/ticks';
import { segments, phaseStarts } from '../src/curves/render';
import { testConfig } from '../../../test/support/services';

const A = 'key-curves-a-0123456789';
const B = 'key-curves-b-0123456789';
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

interface XmlNode {
  name: string;
  attrs: Record<string, string>;
  children: XmlNode[];
  text: string;
}

const ENTITY = /&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;
const decode = (s: string) =>
  s.replace(ENTITY, (_m, e: string) =>
    e === 'amp' ? '&' : e === 'lt' ? '<' : e === 'gt' ? '>' : e === 'quot' ? '"' : e === 'apos' ? "'" : String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)),
  );

/** A strict little XML parser: throws on unbalanced tags, bad attributes, stray '<' or a bare '&'. */
function parseXml(src: string): XmlNode {
  let s = src.replace(/^<\?xml[^?]*\?>\s*/, '');
  const root: XmlNode = { name: '#document', attrs: {}, children: [], text: '' };
  const stack = [root];
  const checkText = (t: string) => {
    if (t.includes('<') || t.replace(ENTITY, '').includes('&')) throw new Error(`bad character data: ${t.slice(0, 60)}`);
  };
  while (s.length) {
    const lt = s.indexOf('<');
    const chunk = lt < 0 ? s : s.slice(0, lt);
    checkText(chunk);
    stack.at(-1)!.text += decode(chunk);
    if (lt < 0) break;
    s = s.slice(lt);
    if (s.startsWith('<!--')) {
      const end = s.indexOf('-->');
      if (end < 0) throw new Error('unterminated comment');
      s = s.slice(end + 3);
      continue;
    }
    const close = /^<\/([A-Za-z][\w:.-]*)\s*>/.exec(s);
    if (close) {
      const open = stack.pop()!;
      if (open.name !== close[1]) throw new Error(`</${close[1]}> closes <${open.name}>`);
      s = s.slice(close[0].length);
      continue;
    }
    const tag = /^<([A-Za-z][\w:.-]*)((?:\s+[A-Za-z_:][\w:.-]*\s*=\s*"[^"<]*")*)\s*(\/?)>/.exec(s);
    if (!tag) throw new Error(`malformed tag at: ${s.slice(0, 60)}`);
    const node: XmlNode = { name: tag[1]!, attrs: {}, children: [], text: '' };
    for (const m of tag[2]!.matchAll(/([A-Za-z_:][\w:.-]*)\s*=\s*"([^"]*)"/g)) {
      if (m[1]! in node.attrs) throw new Error(`duplicate attribute ${m[1]}`);
      checkText(m[2]!);
      node.attrs[m[1]!] = decode(m[2]!);
    }
    stack.at(-1)!.children.push(node);
    if (!tag[3]) stack.push(node);
    s = s.slice(tag[0].length);
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack.at(-1)!.name}>`);
  if (root.children.length !== 1 || root.children[0]!.name !== 'svg') throw new Error('the document is not one <svg> element');
  return root.children[0]!;
}

const all = (n: XmlNode, pred: (x: XmlNode) => boolean): XmlNode[] => [
  ...(pred(n) ? [n] : []),
  ...n.children.flatMap((c) => all(c, pred)),
];
const textOf = (n: XmlNode): string => n.text + n.children.map(textOf).join('');
const points = (p: XmlNode) => p.attrs.points!.trim().split(/\s+/).map((xy) => xy.split(',').map(Number) as [number, number]);

function row(phase: HistoryRow['phase'], epoch: number, loss: number, accuracy: number, valLoss: number | null, valAccuracy: number | null): HistoryRow {
  return { phase, epoch, attempt: 1, loss, accuracy, valLoss, valAccuracy, seconds: 1.5 };
}

describe('curves.svg', () => {
  let deps: ApiDeps;
  let app: FastifyInstance;

  beforeAll(async () => {
    deps = createDeps(testConfig({ GRAFT_API_KEYS: `alpha:${A},beta:${B}` }));
    await deps.storage.ensureBucket();
    app = await buildApp(deps);
  });
  afterAll(async () => {
    await app?.close();
    await deps?.close();
  });

  const createJob = async (patch: Partial<JobRecord>, rows: HistoryRow[] = []) => {
    const now = new Date().toISOString();
    const queued = queuedJobRecord({
      id: newId('job'),
      tenant: 'alpha',
      datasetId: 'ds_curvestest',
      epochs: 5,
      config: acceptConfig({ method: 'fine_tuning', backbone: 'mobilenet_v1_0.25_224' }, 96),
    });
    const rec: JobRecord = {
      ...queued,
      state: 'running',
      phase: 'training_head',
      progress: 0.3,
      epoch: 1,
      etaSeconds: 30,
      attempts: 1,
      backend: 'wasm',
      startedAt: now,
      ...patch,
    };
    await deps.queue.jobs.create(rec);
    for (const r of rows) await deps.queue.jobs.appendHistory(rec.id, r);
    return rec;
  };

  const getSvg = async (id: string, key = A, query = '') => {
    const res = await app.inject({ url: `/v1/jobs/${id}/curves.svg${query}`, headers: auth(key) });
    return res;
  };

  it('draws train and validation loss and accuracy over both phases, with a marker where fine-tuning starts', async () => {
    const head = [0.69, 0.52, 0.41, 0.35, 0.31].map((l, i) => row('training_head', i + 1, l, 0.55 + 0.08 * i, l - 0.05, 0.6 + 0.07 * i));
    const ft = [0.27, 0.22, 0.19].map((l, i) => row('fine_tuning', i + 1, l, 0.9 + 0.02 * i, l + 0.03, 0.91 + 0.01 * i));
    const job = await createJob(
      {
        state: 'succeeded',
        phase: null,
        progress: 1,
        test: { loss: 0.2, accuracy: 0.925, confusionMatrix: [[9, 1], [0, 10]], labels: ['ants', 'bees'], perClass: {} },
        modelId: 'mdl_curvestest',
      },
      [...head, ...ft],
    );
    const res = await getSvg(job.id);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^image\/svg\+xml/);
    const svg = parseXml(res.body);
    expect(svg.attrs.width).toBe('960');
    expect(svg.attrs.height).toBe('420');

    const title = textOf(all(svg, (n) => n.name === 'title')[0]!);
    expect(title).toContain(job.id);
    expect(title).toContain('mobilenet_v1_0.25_224');
    expect(title).toContain('test accuracy 92.5%');

    const series = all(svg, (n) => n.name === 'g' && !!n.attrs['data-series']);
    expect(series.map((g) => g.attrs['data-series']).sort()).toEqual(['train-accuracy', 'train-loss', 'val-accuracy', 'val-loss']);
    for (const g of series) {
      const lines = all(g, (n) => n.name === 'polyline');
      expect(lines).toHaveLength(1);
      const pts = points(lines[0]!);
      expect(pts).toHaveLength(8);
      // Epochs run left to right, evenly spaced.
      const dx = pts.slice(1).map((p, i) => p[0] - pts[i]![0]);
      for (const d of dx) expect(d).toBeCloseTo(dx[0]!, 1);
      expect(dx[0]).toBeGreaterThan(10);
    }
    // Falling loss is drawn going down (SVG y grows downwards); rising accuracy going up.
    const trainLoss = points(all(series.find((g) => g.attrs['data-series'] === 'train-loss')!, (n) => n.name === 'polyline')[0]!);
    expect(trainLoss.at(-1)![1]).toBeGreaterThan(trainLoss[0]![1]);
    const trainAcc = points(all(series.find((g) => g.attrs['data-series'] === 'train-accuracy')!, (n) => n.name === 'polyline')[0]!);
    expect(trainAcc.at(-1)![1]).toBeLessThan(trainAcc[0]![1]);

    // One marker per panel, between the last head epoch and the first fine-tuning epoch.
    const markers = all(svg, (n) => n.attrs.class === 'phase-marker');
    expect(markers).toHaveLength(2);
    expect(markers.every((m) => m.attrs['data-phase'] === 'fine_tuning')).toBe(true);
    const lossMarker = all(all(svg, (n) => n.attrs['data-panel'] === 'loss')[0]!, (n) => n.attrs.class === 'phase-marker')[0]!;
    const mx = Number(lossMarker.attrs.x1);
    expect(mx).toBeGreaterThan(trainLoss[4]![0]);
    expect(mx).toBeLessThan(trainLoss[5]![0]);
    expect(textOf(svg)).toContain('fine-tuning starts');

    // librsvg renders it at its own size, and the series colours are on the canvas.
    const png = await sharp(Buffer.from(res.body)).png().toBuffer();
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([960, 420]);
    const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    let blue = 0;
    let orange = 0;
    for (let i = 0; i < data.length; i += info.channels) {
      const [r, g, b] = [data[i]!, data[i + 1]!, data[i + 2]!];
      if (Math.abs(r - 0x1f) < 24 && Math.abs(g - 0x77) < 24 && Math.abs(b - 0xb4) < 24) blue++;
      if (Math.abs(r - 0xe4) < 24 && Math.abs(g - 0x57) < 24 && Math.abs(b - 0x2e) < 24) orange++;
    }
    expect(blue).toBeGreaterThan(300);
    expect(orange).toBeGreaterThan(300);
    if (process.env.GRAFT_CURVES_PNG) fs.writeFileSync(process.env.GRAFT_CURVES_PNG, png);
  });

  it('breaks a line where a value is missing, and leaves out a series that has none', async () => {
    const rows = [0.7, 0.6, 0.5, 0.45, 0.4].map((l, i) => row('training_head', i + 1, l, 0.6 + 0.05 * i, i === 2 ? null : l, null));
    const job = await createJob({ config: acceptConfig({ method: 'feature_extraction', backbone: 'mobilenet_v1_0.25_224' }, 224) }, rows);
    const res = await getSvg(job.id);
    const svg = parseXml(res.body);
    const ids = all(svg, (n) => !!n.attrs['data-series']).map((g) => g.attrs['data-series']);
    expect(ids.sort()).toEqual(['train-accuracy', 'train-loss', 'val-loss']);
    const val = all(svg, (n) => n.attrs['data-series'] === 'val-loss')[0]!;
    expect(all(val, (n) => n.name === 'polyline').map((p) => points(p).length)).toEqual([2, 2]);
    expect(all(svg, (n) => n.attrs.class === 'phase-marker')).toHaveLength(0);
    expect((await sharp(Buffer.from(res.body)).png().toBuffer()).length).toBeGreaterThan(1000);
  });

  it('draws an empty chart saying "no epochs yet" for a job without history', async () => {
    const job = await createJob({ state: 'queued', phase: null, epoch: null, progress: 0 });
    const res = await getSvg(job.id);
    expect(res.statusCode).toBe(200);
    const svg = parseXml(res.body);
    expect(all(svg, (n) => !!n.attrs['data-series'])).toHaveLength(0);
    expect(all(svg, (n) => n.name === 'text' && textOf(n) === 'no epochs yet')).toHaveLength(2);
    const png = await sharp(Buffer.from(res.body)).png().toBuffer();
    expect((await sharp(png).metadata()).width).toBe(960);
  });

  it('escapes text that comes from the job record', async () => {
    const job = await createJob(
      { config: acceptConfig({ method: 'fine_tuning', backbone: `<script>alert("x")</script> & 'co'\u0001` }, 96) },
      [row('training_head', 1, 0.5, 0.7, 0.4, 0.8)],
    );
    const res = await getSvg(job.id);
    expect(res.body).not.toContain('<script');
    const svg = parseXml(res.body);
    expect(all(svg, (n) => n.name === 'script')).toHaveLength(0);
    expect(textOf(all(svg, (n) => n.name === 'title')[0]!)).toContain(`<script>alert("x")</script> & 'co'`);
    await sharp(Buffer.from(res.body)).png().toBuffer();
  });

  it('takes a size', async () => {
    const job = await createJob({}, [row('training_head', 1, 0.5, 0.7, 0.4, 0.8), row('training_head', 2, 0.4, 0.75, 0.35, 0.82)]);
    const res = await getSvg(job.id, A, '?width=1200&height=600');
    const svg = parseXml(res.body);
    expect([svg.attrs.width, svg.attrs.height]).toEqual(['1200', '600']);
    expect((await sharp(Buffer.from(res.body)).metadata()).width).toBe(1200);
    const bad = await getSvg(job.id, A, '?width=5');
    expect(bad.statusCode).toBe(400);
  });

  it("answers 404 for another tenant's job and for an unknown one, 401 without a key", async () => {
    const job = await createJob({}, [row('training_head', 1, 0.5, 0.7, 0.4, 0.8)]);
    const other = await getSvg(job.id, B);
    expect(other.statusCode).toBe(404);
    expect(other.json().error.code).toBe('JOB_NOT_FOUND');
    const unknown = await getSvg('job_doesnotexist0000');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toMatchObject({ code: 'JOB_NOT_FOUND' });
    expect((await app.inject({ url: `/v1/jobs/${job.id}/curves.svg` })).statusCode).toBe(401);
    expect((await getSvg('not-a-job-id')).statusCode).toBe(400);
  });
});

describe('curve helpers', () => {
  it('chooses round axis ranges and ticks', () => {
    expect(niceAxis(0, 0.83)).toMatchObject({ lo: 0, hi: 1, step: 0.2, ticks: [0, 0.2, 0.4, 0.6, 0.8, 1] });
    expect(niceAxis(0.6, 1)).toMatchObject({ lo: 0.6, hi: 1, step: 0.1 });
    expect(niceAxis(0, 2.3).ticks).toEqual([0, 0.5, 1, 1.5, 2, 2.5]);
    expect(niceAxis(0.5, 0.5).lo).toBeLessThan(0.5);
    expect(formatTick(0.30000000000000004, 0.1)).toBe('0.3');
    expect(epochTicks(5)).toEqual([1, 2, 3, 4, 5]);
    expect(epochTicks(30)).toEqual([1, 5, 10, 15, 20, 25, 30]);
    expect(epochTicks(1)).toEqual([1]);
  });

  it('splits series at missing values and finds phase starts', () => {
    const h = [0.5, null, 0.4, 0.3, Number.NaN].map((v, i) => ({
      phase: i < 3 ? 'training_head' : 'fine_tuning',
      loss: v,
      accuracy: 0.5,
      valLoss: null,
      valAccuracy: null,
    }));
    expect(segments(h, 'loss')).toEqual([[[0, 0.5]], [[2, 0.4], [3, 0.3]]]);
    expect(segments(h, 'valLoss')).toEqual([]);
    expect(phaseStarts(h)).toEqual([{ index: 3, phase: 'fine_tuning' }]);
  });
});

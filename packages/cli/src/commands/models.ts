// graft predict, and graft models ls|show|pull|rm
import { Command, Option } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { isId } from '@graft/contract';
import { ApiError, type GraftClient, type ImageFile, type Model, type OutOfDistribution, type PredictOptions, type Prediction } from '../client';
import { contextOf, intArg } from '../context';
import { CliError } from '../errors';
import { bytes, cli, json, num, pct, plural, table, when } from '../output';
import { byteProgress } from '../progress';
import { metricsText } from '../report';
import { listFiles } from '../archive';
import { resolveDataset } from './datasets';

const IMAGE_TYPES: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
};

/** The image files named: files as given, folders searched for .jpg, .jpeg, .png and .webp files. */
export async function expandImages(args: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const a of args) {
    const st = await fs.promises.stat(a).catch(() => null);
    if (!st) throw new CliError('INVALID_ARGUMENT', `'${a}' does not exist`);
    if (st.isDirectory()) {
      const found = (await listFiles(a)).filter((f) => IMAGE_TYPES[path.extname(f.rel).toLowerCase()]).map((f) => f.abs);
      if (!found.length) throw new CliError('INVALID_ARGUMENT', `'${a}' holds no .jpg, .png or .webp images`);
      out.push(...found);
    } else out.push(a);
  }
  return out;
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;

const modelAccuracy = (m: Model) => {
  const acc = m.metrics?.test?.accuracy ?? m.metrics?.validation?.accuracy;
  const which = m.metrics?.test ? 'test' : m.metrics?.validation ? 'val' : '';
  return acc === undefined ? '-' : `${pct(acc)} ${which}`;
};

/** What a command that reads a model takes to name it (resolveModel). */
export const MODEL_REF = 'model id, job id, or dataset name or id (its newest model)';

/** A model id, the id of the job that trained it, or a dataset's id or name (its newest model). */
export async function resolveModel(client: GraftClient, ref: string): Promise<Model> {
  if (isId('mdl', ref)) return client.getModel(ref);
  if (isId('job', ref)) {
    const job = await client.getJob(ref);
    if (!job.modelId) throw new CliError('NO_MODEL', `job ${ref} has no model (it is ${job.state}); follow it with: ${cli()} jobs show ${ref} --follow`);
    return client.getModel(job.modelId);
  }
  const ds = await resolveDataset(client, ref).catch((err) => {
    if (err instanceof ApiError && err.status === 404) {
      throw new CliError('MODEL_NOT_FOUND', `no model, job or dataset '${ref}'; name a model (mdl_…), a job (job_…) or a dataset; see ${cli()} models ls`);
    }
    throw err;
  });
  const newest = (await client.listModels()).items
    .filter((m) => m.datasetId === ds.id)
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0];
  if (!newest) throw new CliError('NO_MODEL', `dataset '${ref}' (${ds.id}) has no trained model yet; train one with: ${cli()} train ${ref} --follow`);
  return newest;
}

/** An image file as the API takes it: its bytes, its name and a type from its extension. */
export async function readImageFile(file: string): Promise<ImageFile> {
  return {
    name: path.basename(file),
    data: new Uint8Array(await fs.promises.readFile(file)),
    type: IMAGE_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
  };
}

interface PredictRow {
  file: string;
  predictions: Prediction[];
  outOfDistribution: OutOfDistribution | null;
  error?: { code: string; message: string };
}

/** Classifies one request's worth of files; an image the service cannot read is set aside and the rest sent again. */
async function predictChunk(client: GraftClient, modelId: string, files: string[], opts: PredictOptions): Promise<PredictRow[]> {
  const rows = new Map<string, PredictRow>();
  let pending = files;
  while (pending.length) {
    const payload = await Promise.all(pending.map(readImageFile));
    try {
      const r = await client.predict(modelId, payload, opts);
      r.results.forEach((res, k) => rows.set(pending[k]!, { file: pending[k]!, predictions: res.predictions, outOfDistribution: res.outOfDistribution }));
      break;
    } catch (err) {
      const index = err instanceof ApiError ? (err.details as { index?: unknown } | undefined)?.index : undefined;
      if (!(err instanceof ApiError) || err.status !== 400 || typeof index !== 'number' || !pending[index]) throw err;
      const bad = pending[index]!;
      rows.set(bad, { file: bad, predictions: [], outOfDistribution: null, error: { code: err.code, message: err.message } });
      pending = pending.filter((_, k) => k !== index);
    }
  }
  return files.map((f) => rows.get(f)!);
}

/** What the OOD column says of an image: its score, and a question where it is flagged. */
export const NONE_OF_ITS_CLASSES = 'none of its classes?';
const oodCell = (o: OutOfDistribution | null) => (o ? `${num(o.score, 3)}${o.flagged ? ` ${NONE_OF_ITS_CLASSES}` : ''}` : '-');

/** An out-of-distribution threshold: a number from 0 to 2, as the API takes it. */
function thresholdArg(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 2) {
    throw new CliError('INVALID_ARGUMENT', `--ood-threshold must be a number from 0 to 2 (a distance between unit feature vectors), not '${v}'`);
  }
  return n;
}

/** The threshold a model flags images above, from its graft.json; null where it has none. */
async function modelThreshold(client: GraftClient, modelId: string): Promise<number | null> {
  const graft = await client.request<{ outOfDistribution?: { threshold?: number } | null }>('GET', `/v1/models/${modelId}/artifacts/graft.json`);
  return graft.outOfDistribution?.threshold ?? null;
}

interface PredictFlags {
  topK: number;
  batch: number;
  json?: boolean;
  tta?: 'flip';
  oodThreshold?: number;
}

export function predictCommand(): Command {
  return new Command('predict')
    .description('classify images with a trained model, and say which look like none of its classes')
    .argument('<model>', MODEL_REF)
    .argument('<images...>', 'image files or folders of images')
    .option('-k, --top-k <n>', 'classes to show per image', intArg('--top-k'), 3)
    .option('--batch <n>', 'images per request', intArg('--batch'), 16)
    .addOption(new Option('--tta <mode>', 'test-time augmentation: flip averages each prediction with that of the mirrored image').choices(['flip']))
    .option('--ood-threshold <score>', "flag images whose out-of-distribution score is above this (0 to 2; default: the model's, set in training)", thresholdArg)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
The OOD column is the image's out-of-distribution score: the mean distance of its features to those of the nearest
training images. Above the model's threshold (set in training so that about 5% of the validation images are above
it) the row says "${NONE_OF_ITS_CLASSES}": the image looks unlike every class the model knows.`,
    )
    .action(async (ref: string, images: string[], opts: PredictFlags, command: Command) => {
      const { client, io } = contextOf(command);
      const files = await expandImages(images);
      const model = await resolveModel(client, ref);
      const asked: PredictOptions = { topK: opts.topK, tta: opts.tta, oodThreshold: opts.oodThreshold };
      const results: PredictRow[] = [];
      for (let i = 0; i < files.length; i += opts.batch) results.push(...(await predictChunk(client, model.id, files.slice(i, i + opts.batch), asked)));
      const failed = results.filter((r) => r.error);
      if (failed.length) process.exitCode = 1;
      if (opts.json) return json(io, { modelId: model.id, results });
      const shown = Math.min(opts.topK, model.labels.length);
      const scored = results.some((r) => r.outOfDistribution);
      io.out.write(
        table(
          ['FILE', 'LABEL', 'PROBABILITY', shown > 1 ? `TOP ${shown}` : 'TOP', ...(scored ? ['OOD'] : [])],
          results.map((r) => [
            path.relative(process.cwd(), r.file) || r.file,
            // The service numbers the image within its request; the row already names the file.
            r.error ? `error: ${r.error.message.replace(/^image \d+ is /, '')}` : (r.predictions[0]?.label ?? '-'),
            r.error ? '-' : pct(r.predictions[0]?.probability),
            r.predictions.map((p) => `${p.label} ${pct(p.probability)}`).join(', '),
            ...(scored ? [oodCell(r.outOfDistribution)] : []),
          ]),
          { align: ['left', 'left', 'right', 'left', 'left'] },
        ),
      );
      if (failed.length) io.err.write(`${failed.length} of ${plural(results.length, 'image')} could not be classified\n`);
      const flagged = results.filter((r) => r.outOfDistribution?.flagged).length;
      if (flagged) {
        const threshold = opts.oodThreshold ?? (await modelThreshold(client, model.id));
        io.err.write(
          `${flagged} of ${plural(results.length, 'image')} look${flagged === 1 ? 's' : ''} like none of the model's classes ` +
            `(OOD score above ${threshold === null ? 'the threshold' : num(threshold, 3)}${opts.oodThreshold === undefined ? ", the model's threshold; --ood-threshold sets another" : ''})\n`,
        );
      }
    });
}

export function modelsCommand(): Command {
  const cmd = new Command('models').description('trained models');

  cmd
    .command('ls')
    .description('list models, newest first')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, command: Command) => {
      const { client, io } = contextOf(command);
      const list = await client.listModels();
      if (opts.json) return json(io, list);
      if (!list.items.length) return void io.out.write(`no models yet; train one with: ${cli()} train <dataset> --follow\n`);
      io.out.write(
        table(
          ['ID', 'LABELS', 'BACKBONE', 'INPUT', 'ACCURACY', 'JOB', 'CREATED'],
          list.items.map((m) => [
            m.id,
            m.labels.length > 4 ? `${m.labels.slice(0, 4).join(', ')}, … (${m.labels.length})` : m.labels.join(', '),
            m.backbone ?? (m.method === 'scratch' ? 'scratch' : '-'),
            `${m.inputSize}px`,
            modelAccuracy(m),
            m.jobId,
            when(m.createdAt),
          ]),
        ),
      );
    });

  cmd
    .command('show')
    .description('a model: labels, backbone, metrics, files')
    .argument('<model>', MODEL_REF)
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { json?: boolean }, command: Command) => {
      const { client, io } = contextOf(command);
      const m = await resolveModel(client, ref);
      const files = await client.listArtifacts(m.id);
      if (opts.json) return json(io, { ...m, files: files.items });
      const o = io.out;
      o.write(
        `id        ${m.id}\njob       ${m.jobId}\ndataset   ${m.datasetId ?? '-'}\nmethod    ${m.method ?? '-'}\nbackbone  ${m.backbone ?? '-'}\n` +
          `input     ${m.inputSize}px\nlabels    ${m.labels.join(', ')}\ncreated   ${when(m.createdAt)}\n`,
      );
      if (m.metrics?.validation) o.write('\n' + metricsText('validation', m.metrics.validation));
      if (m.metrics?.test) o.write('\n' + metricsText('test', m.metrics.test));
      o.write('\n' + table(['FILE', 'SIZE'], files.items.map((f) => [f.name, bytes(f.bytes)]), { align: ['left', 'right'] }));
    });

  cmd
    .command('pull')
    .description("download every file of a model (model.json, weights, graft.json, …) into a folder")
    .argument('<model>', MODEL_REF)
    .argument('<folder>', 'where to put the files (created if missing)')
    .action(async (ref: string, folder: string, _opts: unknown, command: Command) => {
      const { client, io } = contextOf(command);
      const { id } = await resolveModel(client, ref);
      const listed = (await client.listArtifacts(id)).items;
      // Only plain file names can be fetched (and written) one by one; anything else is named and left out.
      const items = listed.filter((f) => SAFE_NAME.test(f.name));
      for (const f of listed) if (!items.includes(f)) io.err.write(`skipping '${f.name}': not a plain file name\n`);
      if (!items.length) throw new CliError('NO_ARTIFACTS', `model '${id}' has no files`);
      await fs.promises.mkdir(folder, { recursive: true });
      const total = items.reduce((a, f) => a + (f.bytes ?? 0), 0);
      const progress = byteProgress(io, `pulling ${id}`, total);
      let done = 0;
      try {
        for (const f of items) {
          const dest = path.join(folder, f.name);
          const tmp = `${dest}.part`;
          const { body } = await client.artifact(id, f.name);
          let n = 0;
          body.on('data', (c: Buffer) => {
            n += c.length;
            progress.tick(done + n);
          });
          await pipeline(body, fs.createWriteStream(tmp));
          await fs.promises.rename(tmp, dest);
          done += n;
        }
      } finally {
        progress.done();
      }
      io.out.write(table(['FILE', 'SIZE'], items.map((f) => [path.join(folder, f.name), bytes(f.bytes)]), { align: ['left', 'right'] }));
      io.out.write(`pulled ${items.length} files (${bytes(done)}) into ${folder}\n`);
    });

  cmd
    .command('rm')
    .description('delete a model')
    .argument('<model>', 'model id (mdl_…): only a model is deleted by its id')
    .action(async (id: string, _opts: unknown, command: Command) => {
      const { client, io } = contextOf(command);
      if (!isId('mdl', id)) throw new CliError('INVALID_ARGUMENT', `'${id}' is not a model id: rm takes a model's own id (mdl_…), never a job's or a dataset's; see ${cli()} models ls`);
      await client.deleteModel(id);
      io.out.write(`deleted ${id}\n`);
    });

  return cmd;
}

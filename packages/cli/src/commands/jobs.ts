// graft train, and graft jobs ls|show|cancel|curves|label-issues
import { Command, Option } from 'commander';
import fs from 'node:fs';
import { JOB_STATES } from '@graft/contract';
import type { Job } from '../client';
import { contextOf, intArg, type Context } from '../context';
import { CliError } from '../errors';
import { followJob } from '../follow';
import { cli, json, paintState, phaseName, table, when, type Out } from '../output';
import { printJob, printOutcome } from '../report';
import { resolveDataset } from './datasets';

type Config = Record<string, any>;

/** --config: a JSON object written inline, or the path of a JSON file. */
export function readConfigArg(v: string): Config {
  const text = /^\s*[[{]/.test(v) ? v : (() => {
    try {
      return fs.readFileSync(v, 'utf8');
    } catch (err) {
      throw new CliError('INVALID_ARGUMENT', `--config: cannot read '${v}' (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); pass a JSON file or inline JSON`);
    }
  })();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CliError('INVALID_ARGUMENT', `--config: not valid JSON (${(err as Error).message})`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new CliError('INVALID_ARGUMENT', '--config must be a JSON object');
  return parsed as Config;
}

export interface TrainFlags {
  config?: string;
  method?: string;
  backbone?: string;
  inputSize?: number;
  batchSize?: number;
  epochs?: number;
  fineTuneEpochs?: number;
}

/** The training config sent with the job: --config, then the flags on top. */
export function buildConfig(f: TrainFlags): Config | undefined {
  const c: Config = f.config ? readConfigArg(f.config) : {};
  if (f.method) c.method = f.method;
  if (f.backbone) c.backbone = f.backbone;
  if (f.inputSize !== undefined) c.inputSize = f.inputSize;
  if (f.batchSize !== undefined) c.batchSize = f.batchSize;
  if (f.epochs !== undefined) c.featureExtraction = { ...(c.featureExtraction ?? {}), epochs: f.epochs };
  if (f.fineTuneEpochs !== undefined) c.fineTuning = { ...(c.fineTuning ?? {}), epochs: f.fineTuneEpochs };
  return Object.keys(c).length ? c : undefined;
}

/** Follows a job to its end and prints how it went; answers the exit code. */
async function follow(ctx: Context, id: string, asJson: boolean): Promise<number> {
  const { client, io } = ctx;
  const r = await followJob(client, id, { io, display: asJson ? 'none' : undefined });
  if (asJson) json(io, r.job);
  else if (r.detached) {
    io.err.write(`\nstopped following; ${id} is still ${r.job.state}. Follow it again with: ${cli()} jobs show ${id} --follow\n`);
  } else printOutcome(io, r.job);
  if (r.detached) return 0;
  if (r.job.state === 'succeeded') return 0;
  return r.cancelledByUser ? 130 : 1;
}

/** The job just created; when followed, its state is left to the bars below this line. */
function printQueued(io: Out, job: Job, datasetName: string, followed = false) {
  const cfg = job.config ?? {};
  const net = cfg.method === 'scratch' ? 'from scratch' : `${cfg.backbone}${cfg.inputSize ? ` @${cfg.inputSize}px` : ''}`;
  io.out.write(`${job.id}${followed ? '' : ` ${job.state}`}: ${String(cfg.method ?? '').replace(/_/g, ' ')} on ${datasetName} (${job.datasetId}), ${net}\n`);
}

export function trainCommand(): Command {
  return new Command('train')
    .description('start a training job on a dataset (defaults: the classic small-data transfer-learning recipe)')
    .argument('<dataset>', 'dataset id or name')
    .addOption(new Option('--method <method>', 'how to train').choices(['fine_tuning', 'feature_extraction', 'scratch']))
    .option('--backbone <name>', 'pretrained base network (see GET /v1/backbones)')
    .option('--input-size <px>', 'image size the network sees', intArg('--input-size'))
    .option('--batch-size <n>', 'images per training step', intArg('--batch-size'))
    .option('--epochs <n>', 'epochs of the first phase (training the head, or all of scratch training)', intArg('--epochs'))
    .option('--fine-tune-epochs <n>', 'epochs of fine-tuning (method fine_tuning)', intArg('--fine-tune-epochs', 0))
    .option('--config <file|json>', 'a full training config (JSON file or inline JSON); the flags above override it')
    .option('-f, --follow', 'follow the job live until it ends (Ctrl-C asks whether to cancel it)')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: TrainFlags & { follow?: boolean; json?: boolean }, command: Command) => {
      const ctx = contextOf(command);
      const { client, io } = ctx;
      const config = buildConfig(opts);
      const ds = await resolveDataset(client, ref);
      const job = await client.createJob(ds.id, config);
      if (!opts.follow) {
        if (opts.json) return json(io, job);
        printQueued(io, job, ds.name);
        io.out.write(`follow it: ${cli()} jobs show ${job.id} --follow\n`);
        return;
      }
      if (!opts.json) printQueued(io, job, ds.name, true);
      process.exitCode = await follow(ctx, job.id, !!opts.json);
    });
}

export function jobsCommand(): Command {
  const cmd = new Command('jobs').description('training jobs');

  cmd
    .command('ls')
    .description('list jobs, newest first')
    .addOption(new Option('--state <state>', 'only jobs in this state').choices(JOB_STATES))
    .option('--limit <n>', 'at most this many', intArg('--limit'), 50)
    .option('--json', 'print JSON')
    .action(async (opts: { state?: string; limit: number; json?: boolean }, command: Command) => {
      const { client, io } = contextOf(command);
      const list = await client.listJobs({ state: opts.state, limit: opts.limit });
      if (opts.json) return json(io, list);
      if (!list.items.length) return void io.out.write(`no ${opts.state ? `${opts.state} ` : ''}jobs\n`);
      io.out.write(
        table(
          ['ID', 'STATE', 'PROGRESS', 'METHOD', 'BACKBONE', 'DATASET', 'MODEL', 'CREATED'],
          list.items.map((j) => [
            j.id,
            paintState(j.state, io.out),
            j.state === 'running' ? `${Math.round(j.progress * 100)}% ${phaseName(j.phase)}` : `${Math.round(j.progress * 100)}%`,
            String(j.config?.method ?? '-'),
            j.config?.method === 'scratch' ? '-' : String(j.config?.backbone ?? '-'),
            j.datasetId,
            j.modelId ?? '-',
            when(j.createdAt),
          ]),
        ),
      );
      if (list.total > list.items.length) io.out.write(`(${list.items.length} of ${list.total}; --limit for more)\n`);
    });

  cmd
    .command('show')
    .description('a job: state, progress, history, metrics')
    .argument('<job>', 'job id')
    .option('-f, --follow', 'follow the job live until it ends (Ctrl-C asks whether to cancel it)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { follow?: boolean; json?: boolean }, command: Command) => {
      const ctx = contextOf(command);
      if (opts.follow) {
        process.exitCode = await follow(ctx, id, !!opts.json);
        return;
      }
      const job = await ctx.client.getJob(id);
      if (opts.json) return json(ctx.io, job);
      printJob(ctx.io, job);
    });

  cmd
    .command('cancel')
    .description('cancel a queued or running job')
    .argument('<job>', 'job id')
    .action(async (id: string, _opts: unknown, command: Command) => {
      const { client, io } = contextOf(command);
      const r = await client.cancelJob(id);
      io.out.write(r.state === 'cancelled' ? `${id} cancelled\n` : `${id}: cancellation requested (it stops within seconds)\n`);
    });

  cmd
    .command('curves')
    .description("save a job's loss and accuracy curves as an SVG picture")
    .argument('<job>', 'job id')
    .argument('[file]', 'where to write it (default: <job>-curves.svg; - for stdout)')
    .action(async (id: string, file: string | undefined, _opts: unknown, command: Command) => {
      const { client, io } = contextOf(command);
      const res = await client.raw('GET', `/v1/jobs/${encodeURIComponent(id)}/curves.svg`);
      const svg = await res.text();
      if (file === '-') return void io.out.write(svg);
      const out = file ?? `${id}-curves.svg`;
      fs.writeFileSync(out, svg);
      io.out.write(`wrote ${out}\n`);
    });

  cmd
    .command('label-issues')
    .description('likely label errors a succeeded job found: images whose label its out-of-sample predictions contradict')
    .argument('<job>', 'job id')
    .option('--limit <n>', 'at most this many', intArg('--limit'), 30)
    .addOption(new Option('--split <split>', 'only images of this split').choices(['train', 'validation', 'test']))
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { limit: number; split?: string; json?: boolean }, command: Command) => {
      const { client, io } = contextOf(command);
      const r = await client.labelIssues(id, { limit: opts.limit, split: opts.split });
      if (opts.json) return json(io, r);
      const scored = r.scored.train + r.scored.validation;
      if (!r.items.length) return void io.out.write(`no likely label errors among the ${scored} images scored\n`);
      io.out.write(
        table(
          ['#', 'SCORE', 'LABEL', 'SUGGESTED', 'SPLIT', 'PATH'],
          r.items.map((it, i) => [i + 1, it.score.toFixed(2), it.label, it.suggestedLabel, it.split, it.path ?? it.imageId ?? '-']),
          { align: ['right', 'right', 'left', 'left', 'left', 'left'] },
        ),
      );
      io.out.write(`${r.total} of ${scored} images may be mislabelled${r.total > r.items.length ? ` (${r.items.length} shown; --limit for more)` : ''}\n`);
    });

  return cmd;
}

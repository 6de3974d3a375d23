// graft datasets push|ls|show|rm
import { Command } from 'commander';
import { isId } from '@graft/contract';
import { pipeline } from 'node:stream';
import { counting, openSource } from '../archive';
import { ApiError, type GraftClient, type Dataset } from '../client';
import { contextOf } from '../context';
import { CliError } from '../errors';
import { bytes, cli, json, table, when } from '../output';
import { byteProgress } from '../progress';
import { printDataset, printHealth } from '../report';

/** A dataset id, or the name of one (the newest of that name). */
export async function resolveDataset(client: GraftClient, ref: string): Promise<Dataset> {
  if (isId('ds', ref)) return client.getDataset(ref);
  const { items } = await client.listDatasets();
  const named = items.filter((d) => d.name === ref).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  if (!named.length) throw new ApiError('DATASET_NOT_FOUND', `no dataset with id or name '${ref}'; see ${cli()} datasets ls`, 404);
  return named[0]!;
}

export function datasetsCommand(): Command {
  const cmd = new Command('datasets').description('upload and manage labelled image sets');

  cmd
    .command('push')
    .description('upload a folder (<class>/<image> or <split>/<class>/<image>), or a zip, tar or tar.gz archive')
    .argument('<path>', 'a folder or an archive')
    .option('--name <name>', 'dataset name (default: the folder or archive name)')
    .option('--json', 'print the dataset record as JSON')
    .action(async (p: string, opts: { name?: string; json?: boolean }, command: Command) => {
      const { client, io } = contextOf(command);
      const src = await openSource(p);
      const name = opts.name ?? src.name;
      // The service refuses a name in use; saying so before the upload saves sending the photos for nothing.
      const taken = (await client.listDatasets()).items.find((d) => d.name === name);
      if (taken) {
        src.stream.destroy();
        throw new CliError('DATASET_NAME_TAKEN', `a dataset named '${name}' exists (${taken.id}); push with --name <another>, or remove it first: ${cli()} datasets rm ${taken.id}`);
      }
      if (src.kind === 'folder') io.err.write(`zipping ${src.files} files from ${p} on the fly\n`);
      const progress = byteProgress(io, `uploading ${name}`, src.size);
      let uploaded = false;
      const counter = counting((n) => {
        progress.tick(n);
        if (!uploaded && src.size !== undefined && n >= src.size) {
          uploaded = true;
          progress.done();
          io.err.write('uploaded; the service is checking every image…\n');
        }
      });
      let sourceError: Error | null = null;
      pipeline(src.stream, counter, (err) => {
        if (err) sourceError = err;
      });
      let ds: Dataset;
      try {
        ds = await client.uploadDataset(counter, { contentType: src.contentType, size: src.size, name });
      } catch (err) {
        if (sourceError) throw new CliError('READ_FAILED', `reading ${p} failed: ${(sourceError as Error).message}`);
        throw err;
      } finally {
        if (!uploaded) progress.done();
      }
      if (opts.json) return json(io, ds);
      printDataset(io, ds);
      io.out.write(`\ntrain on it: ${cli()} train ${ds.name} --follow\n`);
    });

  cmd
    .command('ls')
    .description('list datasets, newest first')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, command: Command) => {
      const { client, io } = contextOf(command);
      const list = await client.listDatasets();
      if (opts.json) return json(io, list);
      if (!list.items.length) return void io.out.write(`no datasets yet; upload one with: ${cli()} datasets push <folder>\n`);
      const splitText = (d: Dataset) =>
        Object.entries(d.splits ?? {})
          .map(([s, c]) => `${s} ${Object.values(c).reduce((a, b) => a + b, 0)}`)
          .join(', ');
      io.out.write(
        table(
          ['ID', 'NAME', 'CLASSES', 'IMAGES', 'SPLITS', 'SIZE', 'CREATED'],
          list.items.map((d) => [d.id, d.name, String(d.classes.length), String(d.imageCount), splitText(d), bytes(d.bytes), when(d.createdAt)]),
          { align: ['left', 'left', 'right', 'right', 'left', 'right', 'left'] },
        ),
      );
    });

  cmd
    .command('show')
    .description('a dataset: classes, images per split, warnings')
    .argument('<dataset>', 'dataset id or name')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { json?: boolean }, command: Command) => {
      const { client, io } = contextOf(command);
      const ds = await resolveDataset(client, ref);
      if (opts.json) return json(io, ds);
      printDataset(io, ds);
    });

  cmd
    .command('health')
    .description('near-copies within a split, leakage between splits, odd images: the report made at upload')
    .argument('<dataset>', 'dataset id or name')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { json?: boolean }, command: Command) => {
      const { client, io } = contextOf(command);
      const ds = await resolveDataset(client, ref);
      const health = await client.datasetHealth(ds.id);
      if (opts.json) return json(io, health);
      printHealth(io, health);
    });

  cmd
    .command('rm')
    .description('delete a dataset (refused while a queued or running job uses it)')
    .argument('<dataset>', 'dataset id or name')
    .action(async (ref: string, _opts: unknown, command: Command) => {
      const { client, io } = contextOf(command);
      const ds = await resolveDataset(client, ref);
      await client.deleteDataset(ds.id);
      io.out.write(`deleted ${ds.id} (${ds.name})\n`);
    });

  return cmd;
}

// graft explain: where a model looks for a class in one image (Grad-CAM), written as a PNG overlay.
import { Command } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { contextOf } from '../context';
import { CliError } from '../errors';
import { json, pct } from '../output';
import { MODEL_REF, readImageFile, resolveModel } from './models';

const PNG_DATA_URL = /^data:image\/png;base64,/;

/** The overlay's file when --out is not given: beside the current folder, named for the image and the class. */
export const defaultOverlayPath = (image: string, label: string) =>
  `${path.basename(image, path.extname(image))}.${label.replace(/[^A-Za-z0-9._-]+/g, '_')}.png`;

export function explainCommand(): Command {
  return new Command('explain')
    .description('where a model looks for a class in an image (Grad-CAM), written as a PNG of the heatmap over the image')
    .argument('<model>', MODEL_REF)
    .argument('<image>', 'a .jpg, .png or .webp image')
    .option('--label <class>', "the class to explain (default: the model's top class for the image)")
    .option('-o, --out <file>', 'where to write the overlay PNG (default: <name>.<label>.png in the current folder, <name> being the image file name without its extension)')
    .option('--json', 'print the label, probability and heatmap values as JSON (the overlay is still written)')
    .action(async (ref: string, image: string, opts: { label?: string; out?: string; json?: boolean }, command: Command) => {
      const { client, io } = contextOf(command);
      const st = await fs.promises.stat(image).catch(() => null);
      if (!st?.isFile()) throw new CliError('INVALID_ARGUMENT', `'${image}' is not an image file`);
      const model = await resolveModel(client, ref);
      const ex = await client.explain(model.id, await readImageFile(image), opts.label);
      if (!PNG_DATA_URL.test(ex.overlay)) throw new CliError('INVALID_RESPONSE', 'the service answered an overlay that is not a PNG data URL');
      const out = opts.out ?? defaultOverlayPath(image, ex.label);
      await fs.promises.mkdir(path.dirname(path.resolve(out)), { recursive: true });
      await fs.promises.writeFile(out, Buffer.from(ex.overlay.replace(PNG_DATA_URL, ''), 'base64'));
      if (opts.json) {
        const { overlay: _written, ...rest } = ex;
        return json(io, { ...rest, file: image, out });
      }
      io.out.write(`${path.relative(process.cwd(), image) || image}: ${ex.label} ${pct(ex.probability)}; where the model looks for it: ${out}\n`);
    });
}

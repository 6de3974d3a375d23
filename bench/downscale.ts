// Copies a `<split>/<class>/*` image folder with every image downscaled (longest side at most --size px, JPEG),
// so a dataset fits what can be carried to a GPU machine (../shared/gpu/README.md).
//
//   npx tsx bench/downscale.ts SRC DEST [--size 128] [--quality 85] [--per-class N]
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { mapConcurrent } from '@graft/vision';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: { size: { type: 'string', default: '128' }, quality: { type: 'string', default: '85' }, 'per-class': { type: 'string' } },
});
const [src, dest] = positionals;
if (!src || !dest) throw new Error('usage: bench/downscale.ts SRC DEST [--size 128] [--quality 85] [--per-class N]');
const size = Number(args.size);
const perClass = args['per-class'] ? Number(args['per-class']) : Infinity;
const jobs: { from: string; to: string }[] = [];
for (const split of readdirSync(src, { withFileTypes: true }).filter((d) => d.isDirectory())) {
  for (const label of readdirSync(join(src, split.name), { withFileTypes: true }).filter((d) => d.isDirectory())) {
    mkdirSync(join(dest, split.name, label.name), { recursive: true });
    const files = readdirSync(join(src, split.name, label.name)).sort().slice(0, perClass);
    for (const f of files) jobs.push({ from: join(src, split.name, label.name, f), to: join(dest, split.name, label.name, f.replace(/\.\w+$/, '.jpg')) });
  }
}
let bytes = 0;
await mapConcurrent(jobs, 4, async ({ from, to }) => {
  const out = await sharp(from).resize(size, size, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality: Number(args.quality) }).toBuffer();
  writeFileSync(to, out);
  bytes += out.length;
});
console.log(`${jobs.length} images, ${(bytes / 2 ** 20).toFixed(1)} MiB in ${dest}`);

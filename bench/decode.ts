// Decoding + resizing one photo to the training input (decodeImage, 'triangle'): Graft's WebAssembly JPEG decoder
// (jpeg.ts) against sharp (decodeWithSharp), on real images of a dataset, with Pillow's decode beside them where
// /usr/bin/python3 has PIL (the same libjpeg-turbo arithmetic, in C with SIMD). CPU time an image (process CPU,
// every thread, the best of --rounds), one image at a time; the two Graft paths give the same bytes (checked here
// on every image timed). Decode alone (no resize) is timed too.
//
//   npx tsx bench/decode.ts [--dataset ../shared/datasets/dogs-vs-cats] [--images 400] [--size 288] [--rounds 5]
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { decodeImage, decodeWithSharp, TRAINING_RESIZE_KERNEL } from '@graft/inference';
import { decodeJpeg } from '@graft/inference/jpeg';

const { values: a } = parseArgs({
  options: {
    dataset: { type: 'string', default: resolve(import.meta.dirname, '../../shared/datasets/dogs-vs-cats') },
    images: { type: 'string', default: '400' },
    size: { type: 'string', default: '288' },
    rounds: { type: 'string', default: '5' },
    python: { type: 'string', default: '/usr/bin/python3' },
  },
});
const size = Number(a.size);

/** Up to n image files under dir (every split and class), in a fixed order. */
function imageFiles(dir: string, n: number): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      if (out.length >= n) return;
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(jpe?g|png|webp)$/i.test(name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** The least CPU milliseconds an image that `fn` took over the rounds. */
async function cpuPerImage(images: Buffer[], fn: (b: Buffer) => unknown): Promise<number> {
  let best = Infinity;
  for (let r = 0; r < Number(a.rounds); r++) {
    const c0 = process.cpuUsage();
    for (const b of images) await fn(b);
    const c = process.cpuUsage(c0);
    best = Math.min(best, (c.user + c.system) / 1000 / images.length);
  }
  return best;
}

/** Pillow's CPU milliseconds an image to decode the same files (null where python3 or PIL is missing). */
function pillow(files: string[]): number | null {
  const script = `
import sys, time, io
from PIL import Image
files = sys.argv[1:]
data = [open(f, 'rb').read() for f in files]
best = 1e9
for r in range(${Number(a.rounds)}):
    t = time.process_time()
    for b in data:
        Image.open(io.BytesIO(b)).convert('RGB').load()
    best = min(best, (time.process_time() - t) / len(data) * 1000)
print(best)`;
  try {
    return Number(execFileSync(a.python!, ['-c', script, ...files], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  sharp.concurrency(1);
  const files = imageFiles(a.dataset!, Number(a.images));
  const images = files.map((f) => readFileSync(f));
  const handled = images.filter((b) => decodeJpeg(b) !== null).length;
  console.log(`${files.length} images of ${a.dataset} to ${size} px; the WebAssembly decoder takes ${handled}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  let differ = 0;
  for (const b of images) {
    const [x, y] = [await decodeImage(b, size, TRAINING_RESIZE_KERNEL), await decodeWithSharp(b, size, TRAINING_RESIZE_KERNEL)];
    if (!Buffer.from(x).equals(Buffer.from(y))) differ++;
  }
  const rows: Array<[string, number | null]> = [
    ['decode (WebAssembly)', await cpuPerImage(images, (b) => decodeJpeg(b))],
    ['decode (sharp)', await cpuPerImage(images, (b) => sharp(b).raw().toBuffer())],
    ['decode (Pillow, python3)', pillow(files)],
    [`decode + resize to ${size} (decodeImage)`, await cpuPerImage(images, (b) => decodeImage(b, size, TRAINING_RESIZE_KERNEL))],
    [`decode + resize to ${size} (decodeWithSharp)`, await cpuPerImage(images, (b) => decodeWithSharp(b, size, TRAINING_RESIZE_KERNEL))],
  ];
  console.log('\n| path | CPU ms an image (best of rounds) |\n| --- | --- |');
  for (const [name, ms] of rows) console.log(`| ${name} | ${ms === null ? 'n/a (no python3 with PIL)' : ms.toFixed(3)} |`);
  console.log(`\ndecodeImage and decodeWithSharp gave different bytes for ${differ} of ${images.length} images; load average after ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

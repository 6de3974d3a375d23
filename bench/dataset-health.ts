// Near-duplicate and leakage detection on a real dataset with planted copies: re-encoded, resized and slightly
// cropped copies of its images are added to other splits, the whole is ingested as an upload would be (every image
// decoded and fingerprinted), and the health report is compared with what was planted.
// Usage: tsx bench/dataset-health.ts [dataset folder] [copies to plant] [seed]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { ingestArchive } from '../services/api/src/datasets/ingest';
import { analyseDataset } from '../services/api/src/datasets/health';
import { compare, DEFAULT_MATCH, findNearPairs } from '../services/api/src/datasets/near-duplicates';
import { rng, zipOf, type Entry } from '../test/support/images';

const folder = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '../../shared/datasets/dogs-vs-cats'));
const copies = Number(process.argv[3] ?? 200);
const random = rng(Number(process.argv[4] ?? 1));
const SPLITS = ['train', 'validation', 'test'];
const KINDS = ['re-encoded', 'resized', 'cropped', 'cropped+resized'] as const;

const entries: Entry[] = [];
for (const split of fs.readdirSync(folder).filter((s) => SPLITS.includes(s))) {
  for (const label of fs.readdirSync(path.join(folder, split))) {
    for (const f of fs.readdirSync(path.join(folder, split, label)).sort()) {
      entries.push({ path: `${split}/${label}/${f}`, data: fs.readFileSync(path.join(folder, split, label, f)) });
    }
  }
}

/** A copy of `data`: re-saved at a random quality, resized to 40-80%, and/or cut by 2-8% on random sides. */
async function copyOf(data: Buffer, kind: (typeof KINDS)[number]): Promise<Buffer> {
  const { width = 0, height = 0 } = await sharp(data).metadata();
  let img = sharp(data);
  if (kind.startsWith('cropped')) {
    const cut = 0.02 + 0.06 * random();
    const oneSide = random() < 0.5;
    const sides = oneSide ? [0, 1, 2, 3].map((s) => (s === Math.floor(random() * 4) ? cut : 0)) : [0, 1, 2, 3].map(() => (cut / 2) * random() * 2);
    const [l, r, t, b] = [sides[0]! * width, sides[1]! * width, sides[2]! * height, sides[3]! * height].map(Math.round) as [number, number, number, number];
    img = img.extract({ left: l, top: t, width: width - l - r, height: height - t - b });
  }
  if (kind.endsWith('resized')) img = img.resize(Math.round(width * (0.4 + 0.4 * random())));
  return img.jpeg({ quality: Math.round(50 + 40 * random()) }).toBuffer();
}

const planted = new Map<string, string>(); // copy path -> original path
const byKind = new Map<string, number>();
const originals = entries.length;
for (let k = 0; k < copies; k++) {
  const source = entries[Math.floor(random() * originals)]!;
  const [split, label] = source.path.split('/') as [string, string];
  const others = SPLITS.filter((s) => s !== split);
  const target = others[Math.floor(random() * others.length)]!;
  const kind = KINDS[k % KINDS.length]!;
  const copyPath = `${target}/${label}/planted-${k}.jpg`;
  entries.push({ path: copyPath, data: await copyOf(source.data, kind) });
  planted.set(copyPath, source.path);
  byKind.set(copyPath, KINDS.indexOf(kind));
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-health-'));
const zip = path.join(tmp, 'planted.zip');
fs.writeFileSync(zip, await zipOf(entries));

const t0 = performance.now();
const result = await ingestArchive(zip, 'zip', { put: async () => {} });
const ingestSeconds = (performance.now() - t0) / 1000;
const t1 = performance.now();
const report = analyseDataset({ classes: result.classes, splits: result.splits, images: result.images, copies: result.copies });
const healthSeconds = (performance.now() - t1) / 1000;
fs.rmSync(tmp, { recursive: true, force: true });

const key = (a: string, b: string) => [a, b].sort().join(' | ');
const plantedKeys = new Set([...planted].map(([c, o]) => key(c, o)));
const isPlanted = (a: string, b: string) => plantedKeys.has(key(a, b));
// Copies of one original, or of two originals that were already near-copies, pair with each other too.
const origin = (p: string) => planted.get(p) ?? p;
const related = (a: string, b: string) => origin(a) === origin(b);

const leaks = report.leakage.map((l) => [l.images[0].path, l.images[1].path] as const);
const found = leaks.filter(([a, b]) => isPlanted(a, b));
const falsePairs = leaks.filter(([a, b]) => !isPlanted(a, b) && !related(a, b));
const foundByKind = KINDS.map((_, i) => {
  const of = [...planted.keys()].filter((c) => byKind.get(c) === i);
  return `${of.filter((c) => leaks.some(([a, b]) => isPlanted(a, b) && (a === c || b === c))).length}/${of.length}`;
});

console.log(`dataset: ${path.relative(process.cwd(), folder)}, ${result.imageCount} images after planting ${copies} copies across splits`);
console.log('| planted found | by kind (re-encoded, resized, cropped, cropped+resized) | false pairs | groups within a split | ingest s | health report s |');
console.log('| --- | --- | --- | --- | --- | --- |');
console.log(
  `| ${found.length}/${planted.size} (${((100 * found.length) / planted.size).toFixed(1)}%) | ${foundByKind.join(', ')} | ${falsePairs.length} | ` +
    `${report.summary.nearDuplicateGroups} | ${ingestSeconds.toFixed(1)} | ${healthSeconds.toFixed(2)} |`,
);
const fpOf = new Map(result.images.map((im) => [im.path, im.fingerprint]));
const describe = (a: string, b: string) => {
  const c = compare(fpOf.get(a)!, fpOf.get(b)!);
  return `${c.distance} bits, correlation ${c.correlation.toFixed(3)}, colour ${c.colour.toFixed(3)}`;
};
for (const [a, b] of falsePairs.slice(0, 20)) console.log(`  false pair: ${a} ~ ${b}: ${describe(a, b)}`);
const colourOfFound = found.map(([a, b]) => compare(fpOf.get(a)!, fpOf.get(b)!).colour).sort((x, y) => y - x);
console.log(`  colour distance of found pairs, highest: ${colourOfFound.slice(0, 5).map((c) => c.toFixed(3)).join(', ')}`);
for (const [copy, original] of planted) {
  if (found.some(([a, b]) => a === copy || b === copy)) continue;
  const [a, b] = [fpOf.get(copy), fpOf.get(original)];
  const p = a && b ? compare(a, b) : null;
  console.log(`  missed: ${copy} (${KINDS[byKind.get(copy)!]}) of ${original}: ${p ? `${p.distance} bits, correlation ${p.correlation.toFixed(3)}` : 'not stored'}`);
}
for (const g of report.nearDuplicates.slice(0, 5)) console.log(`  group in ${g.split}: ${g.images.map((i) => i.path).join(', ')} (${g.similarity})`);

// Thresholds around the defaults, on the same fingerprints: planted pairs found and false pairs (across splits).
console.log('\n| max distance | min correlation | max colour | found | false |');
console.log('| --- | --- | --- | --- | --- |');
const fps = result.images.map((im) => im.fingerprint);
for (const maxColour of [0.03, 0.035, 0.05, 1]) {
  for (const maxDistance of [10, 12, 14]) {
    for (const minCorrelation of [0.8, 0.85, 0.88]) {
      const match = { ...DEFAULT_MATCH, maxDistance, minCorrelation, maxColour };
      const pairs = findNearPairs(fps, match).map((p) => [result.images[p.a]!, result.images[p.b]!] as const);
      const across = pairs.filter(([a, b]) => a.split !== b.split);
      const hit = across.filter(([a, b]) => isPlanted(a.path, b.path)).length;
      const miss = across.filter(([a, b]) => !isPlanted(a.path, b.path) && !related(a.path, b.path)).length;
      console.log(`| ${maxDistance} | ${minCorrelation} | ${maxColour} | ${hit}/${planted.size} | ${miss} |`);
    }
  }
}

// Small labelled image sets made by the tests themselves, and archives of them.
import sharp from 'sharp';
import yazl from 'yazl';
import { pack as tarPack } from 'tar-stream';
import { createGzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { buffer as streamToBuffer } from 'node:stream/consumers';

/** A deterministic PRNG (mulberry32). */
export function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * An image of class 'stripes' (horizontal bands) or 'dots' (a grid of blobs), with random colours,
 * phase and noise, so that each image differs and the classes are learnable but not trivial.
 */
export async function patternImage(kind: 'stripes' | 'dots', seed: number, size = 64): Promise<Buffer> {
  const r = rng(seed);
  const px = Buffer.alloc(size * size * 3);
  const fg = [r() * 255, r() * 255, r() * 255];
  const bg = [r() * 255, r() * 255, r() * 255];
  const period = 8 + Math.floor(r() * 8);
  const phase = Math.floor(r() * period);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const inBand = (v: number) => (v + phase) % period < period / 2;
      const on = kind === 'stripes' ? inBand(y) : inBand(x) && inBand(y);
      const c = on ? fg : bg;
      for (let k = 0; k < 3; k++) {
        px[(y * size + x) * 3 + k] = Math.max(0, Math.min(255, c[k] + (r() - 0.5) * 40));
      }
    }
  }
  return sharp(px, { raw: { width: size, height: size, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

export interface Entry {
  path: string;
  data: Buffer;
}

/** `<split>/<class>/<n>.jpg` entries for the two pattern classes. */
export async function patternDataset(perClass: Record<string, number>, seed = 1): Promise<Entry[]> {
  const out: Entry[] = [];
  let s = seed * 100_000;
  for (const [split, n] of Object.entries(perClass)) {
    for (const kind of ['stripes', 'dots'] as const) {
      for (let i = 0; i < n; i++) out.push({ path: `${split}/${kind}/${i}.jpg`, data: await patternImage(kind, s++) });
    }
  }
  return out;
}

export async function zipOf(entries: Entry[]): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const e of entries) zip.addBuffer(e.data, e.path);
  zip.end();
  return streamToBuffer(zip.outputStream as unknown as Readable);
}

export async function tarOf(entries: Entry[], gzip = false): Promise<Buffer> {
  const p = tarPack();
  for (const e of entries) p.entry({ name: e.path, size: e.data.length }, e.data);
  p.finalize();
  return streamToBuffer(gzip ? (p as unknown as Readable).pipe(createGzip()) : (p as unknown as Readable));
}

/**
 * A photo-like scene: a random gradient sky over random soft shapes of random colours, blurred, with grain. Scenes
 * of different seeds are unlike each other (as different photos are), which near-duplicate tests need.
 */
export async function sceneImage(seed: number, width = 320, height = 240): Promise<Buffer> {
  const r = rng(seed);
  const colour = () => `rgb(${Math.floor(r() * 256)},${Math.floor(r() * 256)},${Math.floor(r() * 256)})`;
  const shapes: string[] = [];
  for (let i = 0; i < 14; i++) {
    const [cx, cy] = [r() * width, r() * height];
    const [rx, ry] = [10 + r() * width * 0.3, 10 + r() * height * 0.3];
    shapes.push(
      r() < 0.5
        ? `<ellipse cx="${cx}" cy="${cy}" rx="${rx}" ry="${ry}" fill="${colour()}" opacity="${0.5 + r() * 0.5}"/>`
        : `<rect x="${cx - rx}" y="${cy - ry}" width="${2 * rx}" height="${2 * ry}" fill="${colour()}" transform="rotate(${r() * 90} ${cx} ${cy})"/>`,
    );
  }
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<defs><linearGradient id="g" x1="0" y1="0" x2="${r()}" y2="1"><stop offset="0" stop-color="${colour()}"/>` +
    `<stop offset="1" stop-color="${colour()}"/></linearGradient></defs>` +
    `<rect width="100%" height="100%" fill="url(#g)"/>${shapes.join('')}</svg>`;
  const base = await sharp(Buffer.from(svg)).blur(1.5).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const px = base.data;
  for (let i = 0; i < px.length; i++) px[i] = Math.max(0, Math.min(255, px[i]! + (r() - 0.5) * 16));
  return sharp(px, { raw: base.info }).jpeg({ quality: 88 }).toBuffer();
}

import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import * as tarStream from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yazl from 'yazl';
import {
  IngestError,
  detectArchiveFileFormat,
  detectArchiveFormat,
  ingestArchive,
  PUTS_AT_ONCE,
  type ArchiveFormat,
  type IngestResult,
  type StoredImageKey,
} from '../src/datasets/ingest';

// ---------------------------------------------------------------------------------------------------------------
// Archive builders

interface Item {
  name: string;
  data?: Buffer;
  /** zip: unix mode bits (0o120777 makes a symlink); tar: ignored */
  mode?: number;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device';
  linkname?: string;
}

function zipOf(items: Item[]): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const item of items) {
    if (item.type === 'directory') zip.addEmptyDirectory(item.name);
    else zip.addBuffer(item.data ?? Buffer.alloc(0), item.name, item.mode ? { mode: item.mode } : {});
  }
  zip.end();
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
  });
}

async function tarOf(items: Item[], gzip = false): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const item of items) {
    const type = item.type ?? 'file';
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (type === 'file') pack.entry({ name: item.name, type }, item.data ?? Buffer.alloc(0), cb);
      else pack.entry({ name: item.name, type, linkname: item.linkname }, cb);
    });
  }
  pack.finalize();
  await done;
  const tar = Buffer.concat(chunks);
  return gzip ? gzipSync(tar) : tar;
}

function archiveOf(format: ArchiveFormat, items: Item[]): Promise<Buffer> {
  return format === 'zip' ? zipOf(items) : tarOf(items, format === 'tar.gz');
}

/** Replaces every occurrence of `from` with `to` (same length), e.g. a name in both zip headers. */
function patch(buf: Buffer, from: string, to: string): Buffer {
  expect(Buffer.byteLength(from)).toBe(Buffer.byteLength(to));
  const out = Buffer.from(buf);
  const needle = Buffer.from(from);
  let at = out.indexOf(needle);
  expect(at).toBeGreaterThanOrEqual(0);
  while (at >= 0) {
    Buffer.from(to).copy(out, at);
    at = out.indexOf(needle, at + 1);
  }
  return out;
}

/** Sets the "encrypted" flag that the central directory records for the entry named `name`. */
function markEncrypted(zip: Buffer, name: string): Buffer {
  const out = Buffer.from(zip);
  const sig = Buffer.from([0x50, 0x4b, 0x01, 0x02]);
  for (let at = out.indexOf(sig); at >= 0; at = out.indexOf(sig, at + 4)) {
    const nameLength = out.readUInt16LE(at + 28);
    if (out.subarray(at + 46, at + 46 + nameLength).toString() === name) {
      out.writeUInt16LE(out.readUInt16LE(at + 8) | 1, at + 8);
      return out;
    }
  }
  throw new Error(`no central directory record for ${name}`);
}

/** Overwrites the uncompressed size that the central directory records for the entry named `name`. */
function lieAboutSize(zip: Buffer, name: string, size: number): Buffer {
  const out = Buffer.from(zip);
  for (let at = out.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])); at >= 0; at = out.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), at + 4)) {
    const nameLength = out.readUInt16LE(at + 28);
    if (out.subarray(at + 46, at + 46 + nameLength).toString() === name) {
      out.writeUInt32LE(size, at + 24);
      return out;
    }
  }
  throw new Error(`no central directory record for ${name}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Images: small solid squares, a different colour for each index so that no two are duplicates.

function colour(i: number) {
  return { r: (i * 53 + 17) % 256, g: (i * 97 + 101) % 256, b: (i * 151 + 211) % 256 };
}

function image(i: number, format: 'png' | 'jpeg' | 'webp' | 'gif' = 'png', size = 16): Promise<Buffer> {
  const base = sharp({ create: { width: size, height: size, channels: 3, background: colour(i) } });
  return (format === 'jpeg' ? base.jpeg() : format === 'webp' ? base.webp({ lossless: true }) : format === 'gif' ? base.gif() : base.png()).toBuffer();
}

async function images(prefix: string, count: number, start: number): Promise<Item[]> {
  return Promise.all(Array.from({ length: count }, async (_, k) => ({ name: `${prefix}/img${k}.png`, data: await image(start + k) })));
}

// ---------------------------------------------------------------------------------------------------------------
// Running an ingest against an in-memory store

let dir: string;
let fileNo = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graft-ingest-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

class MemoryStore {
  readonly objects = new Map<string, Buffer>();
  calls = 0;
  inFlight = 0;
  put = async (key: StoredImageKey, data: Buffer) => {
    this.calls++;
    this.inFlight++;
    try {
      await new Promise((r) => setTimeout(r, 1));
      this.objects.set(`${key.sha256}.${key.format}`, Buffer.from(data));
    } finally {
      this.inFlight--;
    }
  };
}

async function save(buf: Buffer): Promise<string> {
  const file = join(dir, `upload-${fileNo++}`);
  await writeFile(file, buf);
  return file;
}

async function ingest(
  buf: Buffer,
  format: ArchiveFormat,
  opts: Partial<Parameters<typeof ingestArchive>[2]> = {},
): Promise<{ result: IngestResult; store: MemoryStore }> {
  const store = new MemoryStore();
  const result = await ingestArchive(await save(buf), format, { put: store.put, ...opts });
  return { result, store };
}

async function ingestError(
  buf: Buffer,
  format: ArchiveFormat,
  opts: Partial<Parameters<typeof ingestArchive>[2]> = {},
): Promise<{ error: IngestError; store: MemoryStore }> {
  const store = new MemoryStore();
  const error = await ingestArchive(await save(buf), format, { put: store.put, ...opts }).then(
    () => {
      throw new Error('expected the ingest to fail');
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(IngestError);
  return { error: error as IngestError, store };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const FORMATS: ArchiveFormat[] = ['zip', 'tar', 'tar.gz'];

// ---------------------------------------------------------------------------------------------------------------

describe.each(FORMATS)('layouts in %s', (format) => {
  it('reads <class>/<image> as all train, stores the original bytes, warns about small classes', async () => {
    const items = [...(await images('cats', 3, 0)), ...(await images('dogs', 2, 10))];
    const { result, store } = await ingest(await archiveOf(format, items), format);
    expect(result.classes).toEqual(['cats', 'dogs']);
    expect(result.splits).toEqual({ train: { cats: 3, dogs: 2 } });
    expect(result.imageCount).toBe(5);
    expect(result.rejected).toEqual([]);
    expect(result.duplicates).toBe(0);
    expect(result.bytes).toBe(items.reduce((n, i) => n + i.data!.length, 0));
    expect(result.images.map((i) => i.path)).toEqual(items.map((i) => i.name));
    const cat0 = result.images[0]!;
    expect(cat0).toMatchObject({ split: 'train', label: 'cats', format: 'png', width: 16, height: 16, sha256: sha(items[0]!.data!) });
    expect(store.calls).toBe(5);
    for (const item of items) expect(store.objects.get(`${sha(item.data!)}.png`)).toEqual(item.data);
    expect(result.warnings).toContain("class 'dogs' has 2 images; at least 20 per class is recommended");
  });

  it('reads <split>/<class>/<image>', async () => {
    const items = [
      ...(await images('train/cats', 3, 0)),
      ...(await images('train/dogs', 3, 10)),
      ...(await images('validation/cats', 2, 20)),
      ...(await images('validation/dogs', 1, 30)),
      ...(await images('test/dogs', 1, 40)),
    ];
    const { result, store } = await ingest(await archiveOf(format, items), format);
    expect(result.classes).toEqual(['cats', 'dogs']);
    expect(result.splits).toEqual({ train: { cats: 3, dogs: 3 }, validation: { cats: 2, dogs: 1 }, test: { dogs: 1 } });
    expect(result.images.filter((i) => i.split === 'validation').map((i) => i.label)).toEqual(['cats', 'cats', 'dogs']);
    expect(store.calls).toBe(10);
    expect(result.warnings).toContain("test has no images of 'cats'");
  });

  it('looks through one wrapping folder and skips folders, junk and stray documents silently', async () => {
    const items: Item[] = [
      { name: 'hymenoptera/', type: 'directory' },
      { name: 'hymenoptera/train/', type: 'directory' },
      { name: 'hymenoptera/SOURCE.txt', data: Buffer.from('where these came from') },
      { name: 'hymenoptera/.DS_Store', data: Buffer.from('junk') },
      { name: '__MACOSX/hymenoptera/train/ants/._a0.png', data: Buffer.from('resource fork') },
      { name: 'hymenoptera/train/ants/Thumbs.db', data: Buffer.from('junk') },
      ...(await images('hymenoptera/train/ants', 2, 0)),
      ...(await images('hymenoptera/train/bees', 2, 10)),
      ...(await images('hymenoptera/val/bees', 1, 20)),
    ];
    const { result } = await ingest(await archiveOf(format, items), format);
    expect(result.classes).toEqual(['ants', 'bees']);
    expect(result.splits).toEqual({ train: { ants: 2, bees: 2 }, validation: { bees: 1 } });
    expect(result.images[0]!.path).toBe('hymenoptera/train/ants/img0.png');
    expect(result.rejected).toEqual([]);
    expect(result.warnings.filter((w) => !w.includes('at least 20') && !w.includes('no images of'))).toEqual([]);
  });

  it('rejects an archive whose only class folder is wrapped: TOO_FEW_CLASSES', async () => {
    const { error, store } = await ingestError(await archiveOf(format, await images('photos/cats', 3, 0)), format);
    expect(error.code).toBe('TOO_FEW_CLASSES');
    expect(error.status).toBe(400);
    expect(error.message).toContain("'cats'");
    expect(store.calls).toBe(0);
  });
});

describe('layout errors and policies', () => {
  it('refuses a mix of both layouts, naming an example of each', async () => {
    const items = [...(await images('cats', 1, 0)), ...(await images('train/dogs', 1, 1))];
    const { error } = await ingestError(await zipOf(items), 'zip');
    expect(error.code).toBe('INVALID_LAYOUT');
    expect(error.message).toContain("'cats/img0.png'");
    expect(error.message).toContain("'train/dogs/img0.png'");
  });

  it('refuses folders nested too deeply, naming the path', async () => {
    const items = [...(await images('a/b/cats', 1, 0)), ...(await images('c/d/dogs', 1, 1))];
    const { error } = await ingestError(await tarOf(items), 'tar');
    expect(error.code).toBe('INVALID_LAYOUT');
    expect(error.message).toMatch(/'a\/b\/cats\/img0\.png' (is nested too deeply|does not fit)/);
  });

  it('refuses images without class folders and splits without train', async () => {
    const flat = await ingestError(await zipOf([{ name: 'x.png', data: await image(0) }, { name: 'y.png', data: await image(1) }]), 'zip');
    expect(flat.error.code).toBe('INVALID_LAYOUT');
    expect(flat.error.message).toContain("'x.png'");
    const noTrain = await ingestError(await zipOf([...(await images('validation/cats', 1, 0)), ...(await images('test/dogs', 1, 1))]), 'zip');
    expect(noTrain.error.code).toBe('INVALID_LAYOUT');
    expect(noTrain.error.message).toContain("no 'train' folder");
  });

  it('ignores validation classes that train lacks, with a warning, and never stores them', async () => {
    const fox = await image(99);
    const items = [
      ...(await images('train/cats', 2, 0)),
      ...(await images('train/dogs', 2, 10)),
      { name: 'validation/foxes/f.png', data: fox },
    ];
    const { result, store } = await ingest(await zipOf(items), 'zip');
    expect(result.splits).toEqual({ train: { cats: 2, dogs: 2 } });
    expect(result.warnings).toContain("validation class 'foxes' is not in train; its 1 image was ignored");
    expect(store.objects.has(`${sha(fox)}.png`)).toBe(false);
  });

  it('trims class names, keeps their case, and refuses control characters, bidi overrides and overlong names', async () => {
    const ok = await ingest(await tarOf([...(await images(' Cats ', 1, 0)), ...(await images('dogs', 1, 1))]), 'tar');
    expect(ok.result.classes).toEqual(['Cats', 'dogs']);
    const c1 = await ingestError(await tarOf([...(await images('ca\u0085ts', 1, 0)), ...(await images('dogs', 1, 1))]), 'tar');
    expect(c1.error.code).toBe('INVALID_CLASS_NAME');
    const bidi = await ingestError(await tarOf([...(await images('cats\u202egpj', 1, 0)), ...(await images('dogs', 1, 1))]), 'tar');
    expect(bidi.error.code).toBe('INVALID_CLASS_NAME');
    // C0 controls (newline, escape) are refused anywhere in a path, before class names are looked at
    const c0 = await ingestError(await tarOf([...(await images('ca\nts', 1, 0)), ...(await images('dogs', 1, 1))]), 'tar');
    expect(c0.error.code).toBe('UNSAFE_PATH');
    const long = await ingestError(await tarOf([...(await images('c'.repeat(101), 1, 0)), ...(await images('dogs', 1, 1))]), 'tar');
    expect(long.error.code).toBe('INVALID_CLASS_NAME');
  });

  it('warns about imbalanced classes', async () => {
    const items = [...(await images('cats', 6, 0)), ...(await images('dogs', 2, 10))];
    const { result } = await ingest(await zipOf(items), 'zip');
    expect(result.warnings.some((w) => w.startsWith("classes are imbalanced: 'cats' has 6 training images but 'dogs' has 2"))).toBe(true);
  });
});

describe('image checks', () => {
  it('rejects undecodable and truncated JPEGs with a reason and stores the rest', async () => {
    const jpeg = await image(1, 'jpeg', 64);
    const items: Item[] = [
      ...(await images('cats', 2, 10)),
      ...(await images('dogs', 2, 20)),
      { name: 'cats/garbage.jpg', data: Buffer.from('this is not an image at all') },
      { name: 'dogs/truncated.jpg', data: jpeg.subarray(0, Math.floor(jpeg.length * 0.6)) },
      { name: 'dogs/empty.jpg', data: Buffer.alloc(0) },
    ];
    const { result, store } = await ingest(await zipOf(items), 'zip');
    expect(result.imageCount).toBe(4);
    expect(result.rejected.map((r) => r.path)).toEqual(['cats/garbage.jpg', 'dogs/truncated.jpg', 'dogs/empty.jpg']);
    expect(result.rejected[0]!.reason).toBe('not a decodable image');
    expect(result.rejected[1]!.reason).toMatch(/^not a decodable image \(.*(premature end|truncated)/i);
    expect(result.rejected[2]!.reason).toBe('empty file');
    expect(store.calls).toBe(4);
  });

  it('lists an encrypted zip entry as rejected without reading it', async () => {
    const items = [...(await images('cats', 2, 0)), ...(await images('dogs', 2, 10))];
    const { result } = await ingest(markEncrypted(await zipOf(items), 'dogs/img1.png'), 'zip');
    expect(result.imageCount).toBe(3);
    expect(result.rejected).toEqual([{ path: 'dogs/img1.png', reason: 'cannot be read: encrypted' }]);
  });

  it('accepts JPEG, PNG and WebP; rejects GIF by name of format', async () => {
    const items: Item[] = [
      { name: 'cats/a.jpg', data: await image(1, 'jpeg') },
      { name: 'cats/b.webp', data: await image(2, 'webp') },
      { name: 'dogs/c.png', data: await image(3, 'png') },
      { name: 'dogs/d.gif', data: await image(4, 'gif') },
      { name: 'dogs/e.jpg', data: await image(5, 'png') },
    ];
    const { result, store } = await ingest(await tarOf(items), 'tar');
    expect(result.images.map((i) => [i.path, i.format])).toEqual([
      ['cats/a.jpg', 'jpeg'],
      ['cats/b.webp', 'webp'],
      ['dogs/c.png', 'png'],
      ['dogs/e.jpg', 'png'],
    ]);
    expect(result.rejected).toEqual([{ path: 'dogs/d.gif', reason: "unsupported image format 'gif'" }]);
    expect([...store.objects.keys()].sort()).toEqual(
      [`${sha(items[0]!.data!)}.jpeg`, `${sha(items[1]!.data!)}.webp`, `${sha(items[2]!.data!)}.png`, `${sha(items[4]!.data!)}.png`].sort(),
    );
  });

  it('rejects images over the pixel limit', async () => {
    const big = await image(7, 'png', 100);
    const items: Item[] = [...(await images('cats', 1, 0)), ...(await images('dogs', 1, 1)), { name: 'dogs/big.png', data: big }];
    const { result } = await ingest(await zipOf(items), 'zip', { limits: { maxImagePixels: 5000 } });
    expect(result.imageCount).toBe(2);
    expect(result.rejected).toHaveLength(1);
    expect(result.rejected[0]!.path).toBe('dogs/big.png');
    expect(result.rejected[0]!.reason).toMatch(/100x100.*over the .* limit/);
  });

  it('keeps each duplicate once and counts the repeats', async () => {
    const same = await image(5);
    const items: Item[] = [
      { name: 'cats/a.png', data: same },
      { name: 'cats/a-copy.png', data: same },
      { name: 'dogs/a-again.png', data: same },
      ...(await images('cats', 1, 1)),
      ...(await images('dogs', 1, 2)),
    ];
    const { result, store } = await ingest(await tarOf(items, true), 'tar.gz');
    expect(result.duplicates).toBe(2);
    expect(result.imageCount).toBe(3);
    expect(result.images.filter((i) => i.sha256 === sha(same)).map((i) => i.path)).toEqual(['cats/a.png']);
    expect(store.calls).toBe(3);
    expect(result.warnings.some((w) => w.includes("'dogs/a-again.png' repeats 'cats/a.png'"))).toBe(true);
  });

  it('ignores non-image files inside class folders with a warning, and never reads them', async () => {
    const items: Item[] = [...(await images('cats', 1, 0)), ...(await images('dogs', 1, 1)), { name: 'cats/notes.txt', data: Buffer.alloc(4000) }];
    // notes.txt is over the per-file limit, so reading it would fail the upload
    const { result } = await ingest(await zipOf(items), 'zip', { limits: { maxEntryBytes: 1000 } });
    expect(result.imageCount).toBe(2);
    expect(result.rejected).toEqual([]);
    expect(result.warnings).toContain("ignored 1 file in class folders that is not an image by name (e.g. 'cats/notes.txt')");
  });

  it('refuses an archive whose images are all rejected (NO_IMAGES) or one class of which has none left (EMPTY_CLASS)', async () => {
    const none = await ingestError(await zipOf([{ name: 'cats/a.jpg', data: Buffer.from('x') }, { name: 'dogs/b.jpg', data: Buffer.from('y') }]), 'zip');
    expect(none.error.code).toBe('NO_IMAGES');
    const empty = await ingestError(await zipOf([...(await images('cats', 2, 0)), { name: 'dogs/b.jpg', data: Buffer.from('y') }]), 'zip');
    expect(empty.error.code).toBe('EMPTY_CLASS');
    expect(empty.error.message).toContain("'dogs'");
    expect(empty.error.details?.written).toHaveLength(2);
    const nothing = await ingestError(await zipOf([]), 'zip');
    expect(nothing.error.code).toBe('NO_IMAGES');
  });
});

describe('unsafe entries', () => {
  const unsafeZips: [string, () => Promise<Buffer>][] = [
    ['../evil.png', async () => patch(await zipOf([...(await images('cats', 1, 0)), { name: 'xx/evil.png', data: await image(1) }]), 'xx/evil.png', '../evil.png')],
    ['/abs.png', async () => patch(await zipOf([...(await images('cats', 1, 0)), { name: 'xabs.png', data: await image(1) }]), 'xabs.png', '/abs.png')],
    ['..\\evil.png', async () => patch(await zipOf([...(await images('cats', 1, 0)), { name: 'xx_evil.png', data: await image(1) }]), 'xx_evil.png', '..\\evil.png')],
    ['C:/evil.png', async () => patch(await zipOf([...(await images('cats', 1, 0)), { name: 'CC/evil.png', data: await image(1) }]), 'CC/evil.png', 'C:/evil.png')],
    ['symlink', async () => zipOf([...(await images('cats', 1, 0)), { name: 'dogs/link.png', data: Buffer.from('/etc/passwd'), mode: 0o120777 }])],
  ];
  it.each(unsafeZips)('zip with %s -> UNSAFE_PATH, nothing stored', async (_, build) => {
    const { error, store } = await ingestError(await build(), 'zip');
    expect(error.code).toBe('UNSAFE_PATH');
    expect(error.status).toBe(400);
    expect(error.details?.written).toEqual([]);
    expect(store.calls).toBe(0);
  });

  const unsafeTars: [string, Item][] = [
    ['../evil.png', { name: '../evil.png', data: Buffer.from('x') }],
    ['/abs.png', { name: '/abs.png', data: Buffer.from('x') }],
    ['train/../../evil.png', { name: 'train/../../evil.png', data: Buffer.from('x') }],
    ['symlink', { name: 'dogs/link.png', type: 'symlink', linkname: '/etc/passwd' }],
    ['hard link', { name: 'dogs/link.png', type: 'link', linkname: 'cats/img0.png' }],
    ['device', { name: 'dogs/dev.png', type: 'character-device' }],
  ];
  it.each(unsafeTars)('tar.gz with %s -> UNSAFE_PATH, nothing stored', async (_, bad) => {
    // The unsafe entry comes last, after good images, and still nothing is stored: paths are checked before decoding.
    const items = [...(await images('cats', 2, 0)), ...(await images('dogs', 2, 10)), bad];
    const { error, store } = await ingestError(await tarOf(items, true), 'tar.gz');
    expect(error.code).toBe('UNSAFE_PATH');
    expect(error.message).toContain(bad.name);
    expect(store.calls).toBe(0);
  });
});

async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

describe('limits', () => {
  it('refuses too many entries, in zip and tar, junk included', async () => {
    const items = [...(await images('cats', 3, 0)), ...(await images('dogs', 3, 10))];
    for (let i = 0; i < 10; i++) items.push({ name: `__MACOSX/._${i}`, data: Buffer.from('x') });
    for (const format of FORMATS) {
      const { error } = await ingestError(await archiveOf(format, items), format, { limits: { maxEntries: 10 } });
      expect(error.code).toBe('TOO_MANY_ENTRIES');
      expect(error.status).toBe(413);
    }
  });

  it('refuses a zip entry of 20 MB of zeros by its compression ratio, and by the per-entry limit', async () => {
    const bomb = await zipOf([...(await images('cats', 1, 0)), ...(await images('dogs', 1, 1)), { name: 'dogs/bomb.jpg', data: Buffer.alloc(20e6) }]);
    expect(bomb.length).toBeLessThan(200_000);
    const byRatio = await ingestError(bomb, 'zip');
    expect(byRatio.error.code).toBe('COMPRESSION_RATIO_EXCEEDED');
    expect(byRatio.error.status).toBe(413);
    const bySize = await ingestError(bomb, 'zip', { limits: { maxEntryBytes: 5e6 } });
    expect(bySize.error.code).toBe('ENTRY_TOO_LARGE');
    expect(bySize.error.details?.path).toBe('dogs/bomb.jpg');
  });

  it('refuses a zip of many entries of 1 MiB zeros by the ratio of the whole archive, each entry within its own', async () => {
    const zeros = Array.from({ length: 300 }, (_, i) => ({ name: `${i % 2 ? 'cats' : 'dogs'}/z${i}.jpg`, data: Buffer.alloc(1024 * 1024) }));
    const bomb = await zipOf([...(await images('cats', 1, 0)), ...(await images('dogs', 1, 1)), ...zeros]);
    expect(bomb.length).toBeLessThan(1_000_000);
    const { error } = await ingestError(bomb, 'zip');
    expect(error.code).toBe('COMPRESSION_RATIO_EXCEEDED');
    expect(error.message).toMatch(/^the archive expands more than 100 times/);
    // Refused by the declared sizes once the archive's budget (100 x its size) is spent, not at the end.
    expect(error.details?.inflated as number).toBeLessThan(bomb.length * 100 + 2 * 1024 * 1024);
  });

  it('stops a tar.gz bomb while inflating, even when it hides in junk that is never used', async () => {
    const items = [...(await images('cats', 1, 0)), ...(await images('dogs', 1, 1)), { name: '__MACOSX/zeros', data: Buffer.alloc(20e6) }];
    const archive = await tarOf(items, true);
    const before = await openFds();
    const { error } = await ingestError(archive, 'tar.gz');
    expect(error.code).toBe('COMPRESSION_RATIO_EXCEEDED');
    expect(await openFds()).toBe(before);
  });

  it('stops reading a zip entry whose header lies about its size, and closes the file', async () => {
    const honest = await zipOf([...(await images('cats', 2, 0)), ...(await images('dogs', 2, 10)), { name: 'dogs/liar.jpg', data: Buffer.alloc(20e6) }]);
    const lying = lieAboutSize(honest, 'dogs/liar.jpg', 1000);
    const before = await openFds();
    const { error, store } = await ingestError(lying, 'zip');
    expect(['INVALID_ARCHIVE', 'ENTRY_TOO_LARGE', 'COMPRESSION_RATIO_EXCEEDED']).toContain(error.code);
    expect(error.message).toContain('dogs/liar.jpg');
    // The four good images came first and some may have been stored by the time the liar is read (the ingest
    // stops storing once it fails): the error lists each key stored, and no put is still running once it is thrown.
    expect(store.inFlight).toBe(0);
    expect([...(error.details?.written ?? [])].map((k) => `${k.sha256}.${k.format}`).sort()).toEqual([...store.objects.keys()].sort());
    expect(store.calls).toBe(error.details?.written?.length);
    // `written` is for the caller's clean-up, not for the response body
    expect(Object.keys(error.details ?? {})).not.toContain('written');
    expect(await openFds()).toBe(before);
  });

  it('refuses more uncompressed bytes than maxTotalBytes', async () => {
    const items = [...(await images('cats', 3, 0)), ...(await images('dogs', 3, 10))];
    const total = items.reduce((n, i) => n + i.data!.length, 0);
    for (const format of FORMATS) {
      const { error } = await ingestError(await archiveOf(format, items), format, { limits: { maxTotalBytes: total - 1 } });
      expect(error.code).toBe('ARCHIVE_TOO_LARGE');
    }
  });
});

describe('storing', () => {
  it('stores images apart from the decoders, so that a slow store holds none of them', async () => {
    const items = [...(await images('cats', 12, 0)), ...(await images('dogs', 12, 20))];
    let inFlight = 0;
    let most = 0;
    const stored = new Set<string>();
    const result = await ingestArchive(await save(await zipOf(items)), 'zip', {
      concurrency: 2,
      put: async (key) => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 30));
        stored.add(key.sha256);
        inFlight--;
      },
    });
    expect(result.imageCount).toBe(24);
    expect(stored.size).toBe(24);
    // Two decoders, and more puts than that at once (at most PUTS_AT_ONCE).
    expect(most).toBeGreaterThan(2);
    expect(most).toBeLessThanOrEqual(PUTS_AT_ONCE);
  });
});

describe('failures after storing began', () => {
  it('reports a failing put as STORAGE_FAILED with every key it tried, after all puts settled', async () => {
    // More images than puts run at once, so that not all of them can have been tried when the third put fails.
    const items = [...(await images('cats', 20, 0)), ...(await images('dogs', 20, 30))];
    let calls = 0;
    let inFlight = 0;
    const tried: string[] = [];
    const { error } = await ingestError(await zipOf(items), 'zip', {
      concurrency: 2,
      put: async (key) => {
        tried.push(key.sha256);
        inFlight++;
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        if (++calls === 3) throw new Error('bucket unavailable');
      },
    });
    expect(error.code).toBe('STORAGE_FAILED');
    expect(error.status).toBe(500);
    expect((error.cause as Error).message).toBe('bucket unavailable');
    expect(inFlight).toBe(0);
    expect(error.details?.written?.map((k) => k.sha256)).toEqual(tried);
    expect(tried.length).toBeLessThan(40);
  });

  it('stops on abort with ABORTED and the keys written so far', async () => {
    const items = [...(await images('cats', 20, 0)), ...(await images('dogs', 20, 30))];
    const controller = new AbortController();
    const store = new MemoryStore();
    let stored = 0;
    const { error } = await ingestError(await tarOf(items, true), 'tar.gz', {
      signal: controller.signal,
      concurrency: 1,
      put: async (key, data) => {
        await store.put(key, data);
        // Puts run several at once: the second to end aborts, whichever it is.
        if (++stored === 2) controller.abort();
      },
    });
    expect(error.code).toBe('ABORTED');
    expect(error.details?.written).toHaveLength(store.calls);
    expect(store.calls).toBeLessThan(40);
  });

  it('ends as ABORTED when the abort comes after the archive was read, while images are still being stored', async () => {
    const items = [...(await images('cats', 6, 0)), ...(await images('dogs', 6, 10))];
    const controller = new AbortController();
    let puts = 0;
    const { error } = await ingestError(await zipOf(items), 'zip', {
      signal: controller.signal,
      put: async () => {
        // Slow puts: every image is read and decoded long before the second put ends.
        await new Promise((r) => setTimeout(r, 40));
        if (++puts === 2) controller.abort();
      },
    });
    expect(error.code).toBe('ABORTED');
    expect(error.details?.written?.length).toBeGreaterThanOrEqual(puts);
  });
});

describe('archive format', () => {
  it('detects zip, tar and tar.gz by their first bytes', async () => {
    const items = [{ name: 'cats/a.png', data: await image(0) }];
    expect(detectArchiveFormat(await zipOf(items))).toBe('zip');
    expect(detectArchiveFormat(await tarOf(items))).toBe('tar');
    expect(detectArchiveFormat(await tarOf(items, true))).toBe('tar.gz');
    // the bytes win over a wrong content type
    expect(detectArchiveFormat(await tarOf(items, true), 'application/zip')).toBe('tar.gz');
  });

  it('says null, or INVALID_ARCHIVE, for bytes that are no archive', async () => {
    const junk = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251));
    expect(detectArchiveFormat(junk)).toBeNull();
    expect(detectArchiveFormat(junk, 'application/gzip')).toBeNull();
    await expect(detectArchiveFileFormat(await save(junk))).rejects.toMatchObject({ code: 'INVALID_ARCHIVE', status: 400 });
    for (const format of FORMATS) {
      const { error } = await ingestError(junk, format);
      expect(error.code).toBe('INVALID_ARCHIVE');
    }
  });

  it('refuses a truncated archive as INVALID_ARCHIVE', async () => {
    const items = [...(await images('cats', 2, 0)), ...(await images('dogs', 2, 10))];
    for (const format of FORMATS) {
      const whole = await archiveOf(format, items);
      const { error } = await ingestError(whole.subarray(0, Math.floor(whole.length / 2)), format);
      expect(error.code).toBe('INVALID_ARCHIVE');
    }
  });
});

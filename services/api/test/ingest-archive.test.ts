import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { ByteMeter, collectEntryData } from '../src/datasets/archive-entry';
import { archivePathSegments } from '../src/datasets/archive-path';
import { headerDimensions, sniffImageFormat } from '../src/datasets/images';
import { hasImageName, IngestError, isJunkPath, planLayout, type LayoutFile } from '@graft/layout';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof IngestError) return err.code;
    throw err;
  }
  return undefined;
}

describe('archivePathSegments', () => {
  it.each([
    ['train/cats/a.jpg', ['train', 'cats', 'a.jpg']],
    ['./train/cats/a.jpg', ['train', 'cats', 'a.jpg']],
    ['train//cats/./a.jpg', ['train', 'cats', 'a.jpg']],
    ['train/cats/', ['train', 'cats']],
    ['train\\cats\\a.jpg', ['train', 'cats', 'a.jpg']],
    ['cats/..a.jpg', ['cats', '..a.jpg']],
    ['./', []],
  ])('%j -> %j', (raw, segments) => {
    expect(archivePathSegments(raw)).toEqual(segments);
  });

  it.each(['../evil.jpg', 'cats/../../evil.jpg', '..\\evil.jpg', 'cats\\..\\..\\evil.jpg', '/abs.jpg', '\\\\server\\share\\a.jpg', 'C:/a.jpg', 'c:a.jpg', 'cats/a\u0000.jpg', 'cats/a\n.jpg', '..'])(
    '%j is UNSAFE_PATH',
    (raw) => {
      expect(codeOf(() => archivePathSegments(raw))).toBe('UNSAFE_PATH');
    },
  );
});

describe('junk and image names', () => {
  it.each([
    [['__MACOSX', 'cats', '._a.jpg'], true],
    [['cats', '.DS_Store'], true],
    [['.git', 'config'], true],
    [['cats', 'Thumbs.db'], true],
    [['cats', 'desktop.ini'], true],
    [['cats', 'a.jpg'], false],
    [['cats', 'thumbs.jpg'], false],
  ])('%j junk: %s', (segments, junk) => {
    expect(isJunkPath(segments)).toBe(junk);
  });

  it('tells image names from others, whatever the case', () => {
    expect(['a.jpg', 'a.JPEG', 'a.png', 'a.webp', 'a.gif', 'a.tif'].every(hasImageName)).toBe(true);
    expect(['a.txt', 'README', 'a.jpg.txt', 'jpg'].some(hasImageName)).toBe(false);
  });
});

describe('collectEntryData counts what is actually inflated', () => {
  /** A stream that would never end on its own; `stopped` tells whether its reader let go of it. */
  function endless(chunkSize: number) {
    const state = { produced: 0, stopped: false };
    async function* gen() {
      try {
        for (;;) {
          state.produced += chunkSize;
          yield new Uint8Array(chunkSize);
        }
      } finally {
        state.stopped = true;
      }
    }
    return { state, stream: gen() };
  }

  it('stops at the per-entry limit whatever any header said', async () => {
    const { state, stream } = endless(64 * 1024);
    const read = collectEntryData(stream, { path: 'x.jpg', meter: new ByteMeter(Infinity), maxBytes: 1e6, maxRatio: 100, keep: true });
    await expect(read).rejects.toMatchObject({ code: 'ENTRY_TOO_LARGE', status: 413 });
    expect(state.stopped).toBe(true);
    expect(state.produced).toBeLessThan(1e6 + 64 * 1024 + 1);
  });

  it('stops past the compression ratio, after the grace amount', async () => {
    const { state, stream } = endless(64 * 1024);
    const read = collectEntryData(stream, {
      path: 'x.jpg',
      meter: new ByteMeter(Infinity),
      maxBytes: Infinity,
      compressedSize: 10_000,
      maxRatio: 200,
      keep: false,
    });
    await expect(read).rejects.toMatchObject({ code: 'COMPRESSION_RATIO_EXCEEDED' });
    expect(state.stopped).toBe(true);
    expect(state.produced).toBeLessThan(2_000_000 + 64 * 1024 + 1);
  });

  it('stops at the archive total across entries', async () => {
    const meter = new ByteMeter(300_000);
    const first = endless(50_000);
    async function* some() {
      for await (const c of first.stream) {
        yield c;
        if (first.state.produced >= 200_000) return;
      }
    }
    await collectEntryData(some(), { path: 'a', meter, maxBytes: Infinity, maxRatio: 100, keep: false });
    const second = endless(50_000);
    await expect(collectEntryData(second.stream, { path: 'b', meter, maxBytes: Infinity, maxRatio: 100, keep: false })).rejects.toMatchObject({
      code: 'ARCHIVE_TOO_LARGE',
    });
    expect(second.state.stopped).toBe(true);
    expect(meter.total).toBeLessThanOrEqual(350_000);
  });

  it('stops when aborted', async () => {
    const { state, stream } = endless(1024);
    const controller = new AbortController();
    controller.abort();
    await expect(
      collectEntryData(stream, { path: 'a', meter: new ByteMeter(Infinity), maxBytes: Infinity, maxRatio: 100, keep: false, signal: controller.signal }),
    ).rejects.toThrow();
    expect(state.stopped).toBe(true);
  });
});

describe('sniffImageFormat', () => {
  it('names formats by signature, not by file name', async () => {
    const base = () => sharp({ create: { width: 4, height: 4, channels: 3, background: '#123456' } });
    expect(sniffImageFormat(await base().jpeg().toBuffer())).toBe('jpeg');
    expect(sniffImageFormat(await base().png().toBuffer())).toBe('png');
    expect(sniffImageFormat(await base().webp().toBuffer())).toBe('webp');
    expect(sniffImageFormat(await base().gif().toBuffer())).toBe('gif');
    expect(sniffImageFormat(await base().tiff().toBuffer())).toBe('tiff');
    expect(sniffImageFormat(Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'))).toBe('svg');
    expect(sniffImageFormat(Buffer.from('hello'))).toBeNull();
  });
});

describe('headerDimensions', () => {
  it('reads the same size from the header as libvips does', async () => {
    const base = (w: number, h: number, channels: 3 | 4 = 3) =>
      sharp({ create: { width: w, height: h, channels, background: { r: 10, g: 200, b: 30, alpha: 0.5 } } });
    const cases: [string, 'jpeg' | 'png' | 'webp', Buffer][] = [
      ['jpeg', 'jpeg', await base(33, 17).jpeg().toBuffer()],
      ['progressive jpeg with exif', 'jpeg', await base(40, 9).jpeg({ progressive: true }).withMetadata({ orientation: 6 }).toBuffer()],
      ['png', 'png', await base(300, 2).png().toBuffer()],
      ['lossy webp', 'webp', await base(31, 77).webp().toBuffer()],
      ['lossless webp', 'webp', await base(129, 5).webp({ lossless: true }).toBuffer()],
      ['webp with alpha', 'webp', await base(7, 1000, 4).webp({ alphaQuality: 50 }).toBuffer()],
    ];
    for (const [name, format, buf] of cases) {
      const meta = await sharp(buf).metadata();
      expect(headerDimensions(buf, format), name).toEqual({ width: meta.width, height: meta.height });
    }
    expect(headerDimensions(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 2]), 'jpeg')).toBeNull();
  });
});

function files(...paths: string[]): LayoutFile[] {
  return paths.map((path) => ({ path, segments: path.split('/') }));
}

describe('planLayout', () => {
  it('reads train/<class> as splits, and a lone folder around it as a wrapper', () => {
    const plain = planLayout(files('train/cats/a.jpg', 'train/dogs/b.jpg', 'val/dogs/c.jpg'));
    expect(plain).toMatchObject({ kind: 'splits', wrapper: null, classes: ['cats', 'dogs'] });
    expect(plain.place(['val', 'dogs', 'c.jpg'])).toEqual({ split: 'validation', label: 'dogs' });

    const wrapped = planLayout(files('data/TRAIN/cats/a.jpg', 'data/TRAIN/dogs/b.jpg', 'data/Test/dogs/c.jpg'));
    expect(wrapped).toMatchObject({ kind: 'splits', wrapper: 'data', classes: ['cats', 'dogs'] });
    expect(wrapped.place(['data', 'Test', 'dogs', 'c.jpg'])).toEqual({ split: 'test', label: 'dogs' });
    expect(wrapped.place(['other', 'TRAIN', 'dogs', 'c.jpg'])).toBeNull();
  });

  it('reads <class>/<image> under a wrapper, ignoring images beside the class folders with a warning', () => {
    const plan = planLayout(files('animals/cats/a.jpg', 'animals/dogs/b.jpg', 'animals/cover.jpg'));
    expect(plan).toMatchObject({ kind: 'classes', wrapper: 'animals', classes: ['cats', 'dogs'] });
    expect(plan.place(['animals', 'cover.jpg'])).toBeNull();
    expect(plan.warnings).toEqual(["ignored 1 image outside class folders (e.g. 'animals/cover.jpg')"]);
  });

  it('merges folder names that differ only in surrounding spaces or Unicode form', () => {
    const plan = planLayout(files('caf\u0065\u0301/a.jpg', 'caf\u00e9 /b.jpg', 'dogs/c.jpg'));
    expect(plan.classes).toEqual(['caf\u00e9', 'dogs']);
  });

  it('warns about classes that differ only in case', () => {
    const plan = planLayout(files('Cats/a.jpg', 'cats/b.jpg'));
    expect(plan.classes).toEqual(['Cats', 'cats']);
    expect(plan.warnings).toEqual(["classes 'Cats' and 'cats' differ only in case; they are kept apart"]);
  });

  it('says NO_IMAGES for nothing and INVALID_LAYOUT for shapes it cannot read', () => {
    expect(codeOf(() => planLayout([]))).toBe('NO_IMAGES');
    expect(codeOf(() => planLayout(files('a/b/c/d/e.jpg', 'a/b/c/d/f.jpg')))).toBe('INVALID_LAYOUT');
    expect(codeOf(() => planLayout(files('x/cats/a.jpg', 'y/dogs/b.jpg')))).toBe('INVALID_LAYOUT');
    expect(codeOf(() => planLayout(files('w/train/cats/a.jpg', 'w/dogs/b.jpg')))).toBe('INVALID_LAYOUT');
  });
});

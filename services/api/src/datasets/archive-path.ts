import { IngestError } from './ingest-error';

/**
 * Splits a path stored in an archive into safe segments, or throws UNSAFE_PATH.
 *
 * Backslashes count as separators (some Windows tools write them), so `..\evil.jpg` is caught like `../evil.jpg`.
 * Absolute paths, drive letters, `..` segments and control characters are refused; `.` and empty segments
 * (`./train/x.jpg`, `a//b`, a trailing `/`) are dropped.
 */
export function archivePathSegments(rawPath: string): string[] {
  const unsafe = (why: string): never => {
    throw new IngestError('UNSAFE_PATH', `unsafe path in archive: ${JSON.stringify(rawPath)} (${why})`, {
      path: rawPath,
    });
  };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(rawPath)) unsafe('control characters');
  const path = rawPath.replace(/\\/g, '/');
  if (path.startsWith('/')) unsafe('absolute path');
  if (/^[A-Za-z]:/.test(path)) unsafe('drive letter');
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) unsafe("'..' segment");
  return segments;
}

const JUNK_NAMES = new Set(['thumbs.db', 'ehthumbs.db', 'desktop.ini']);

/** Operating-system litter that is skipped without a word: `__MACOSX/`, dotfiles, `Thumbs.db`, `desktop.ini`. */
export function isJunkPath(segments: readonly string[]): boolean {
  if (segments.some((s) => s === '__MACOSX' || s.startsWith('.'))) return true;
  const base = segments[segments.length - 1];
  return base !== undefined && JUNK_NAMES.has(base.toLowerCase());
}

const IMAGE_NAME = /\.(jpe?g|jpe|jfif|png|webp|gif|bmp|tiff?|heic|heif|avif|svg|ico|jxl|jp2)$/i;

/**
 * Whether a file name looks like an image of any format. Such files are decoded (and rejected with a reason when
 * they are not JPEG, PNG or WebP); other files are never read.
 */
export function hasImageName(name: string): boolean {
  return IMAGE_NAME.test(name);
}

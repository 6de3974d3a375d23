import { IngestError } from '@graft/layout';

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

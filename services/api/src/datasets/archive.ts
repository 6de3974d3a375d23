import { open } from 'node:fs/promises';
import { walkTar } from './archive-tar';
import { walkZip } from './archive-zip';
import type { ArchiveVisitor, WalkOptions } from './archive-entry';
import { IngestError } from '@graft/layout';

export type { ArchiveEntry, ArchiveVisitor, WalkOptions } from './archive-entry';

export type ArchiveFormat = 'zip' | 'tar' | 'tar.gz';

/** How many leading bytes `detectArchiveFormat` needs to recognise every format (tar's magic sits at 257). */
export const ARCHIVE_SNIFF_BYTES = 512;

const CONTENT_TYPES: Record<string, ArchiveFormat> = {
  'application/zip': 'zip',
  'application/x-zip': 'zip',
  'application/x-zip-compressed': 'zip',
  'application/x-tar': 'tar',
  'application/tar': 'tar',
};

function startsWith(bytes: Uint8Array, offset: number, magic: readonly number[]): boolean {
  if (bytes.length < offset + magic.length) return false;
  return magic.every((b, i) => bytes[offset + i] === b);
}

/**
 * Recognises an archive by its first bytes: `PK\x03\x04` (or an empty zip's `PK\x05\x06`) is zip, `1f 8b` is
 * gzip (taken to hold a tar), `ustar` at offset 257 is tar. Only when the bytes say nothing does the content type
 * decide, and then only for zip (a self-extracting zip starts with a program) and tar; gzip needs its magic.
 * Returns null when neither tells.
 */
export function detectArchiveFormat(firstBytes: Uint8Array, contentType?: string): ArchiveFormat | null {
  if (startsWith(firstBytes, 0, [0x50, 0x4b, 0x03, 0x04]) || startsWith(firstBytes, 0, [0x50, 0x4b, 0x05, 0x06])) {
    return 'zip';
  }
  if (startsWith(firstBytes, 0, [0x1f, 0x8b])) return 'tar.gz';
  if (startsWith(firstBytes, 257, [0x75, 0x73, 0x74, 0x61, 0x72])) return 'tar';
  const type = contentType?.split(';')[0]?.trim().toLowerCase();
  return (type && CONTENT_TYPES[type]) || null;
}

/** Reads the start of a file and detects its format; throws INVALID_ARCHIVE when it is none of the three. */
export async function detectArchiveFileFormat(file: string, contentType?: string): Promise<ArchiveFormat> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(ARCHIVE_SNIFF_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const format = detectArchiveFormat(buffer.subarray(0, bytesRead), contentType);
    if (!format) throw new IngestError('INVALID_ARCHIVE', 'the upload is not a zip, tar or tar.gz archive');
    return format;
  } finally {
    await handle.close();
  }
}

/**
 * Calls `visit` for every entry of the archive, in order, one at a time. Unsafe entries (see `archivePathSegments`,
 * links, devices) and broken limits throw IngestError and stop the walk; the file is closed when this settles.
 */
export function walkArchive(file: string, format: ArchiveFormat, opts: WalkOptions, visit: ArchiveVisitor): Promise<void> {
  switch (format) {
    case 'zip':
      return walkZip(file, opts, visit);
    case 'tar':
      return walkTar(file, false, opts, visit);
    case 'tar.gz':
      return walkTar(file, true, opts, visit);
    default:
      return Promise.reject(new IngestError('INVALID_ARCHIVE', `unknown archive format '${String(format)}'`));
  }
}

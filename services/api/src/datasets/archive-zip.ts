import fs from 'node:fs';
import type { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { archivePathSegments } from './archive-path';
import {
  ByteMeter,
  checkEntryCount,
  collectEntryData,
  entryTooLarge,
  ratioExceeded,
  type ArchiveVisitor,
  type WalkOptions,
} from './archive-entry';
import { IngestError } from '@graft/layout';
import { RATIO_GRACE_BYTES } from './ingest-limits';

/** The parts of yauzl 3 that its published types (written for 2.x) lack. */
interface ZipEntry extends yauzl.Entry {
  fileNameRaw: Buffer;
}
const getFileNameLowLevel = (
  yauzl as unknown as {
    getFileNameLowLevel(flags: number, name: Buffer, extra: yauzl.Entry['extraFields'], strict: boolean): string;
  }
).getFileNameLowLevel;

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
/** Hosts (the high byte of "version made by") whose external attributes carry Unix mode bits: Unix, OS X. */
const UNIX_HOSTS = new Set([3, 19]);

function invalidZip(err: unknown, path?: string): IngestError {
  const message = err instanceof Error ? err.message : String(err);
  return new IngestError('INVALID_ARCHIVE', `not a readable zip archive: ${path ? `'${path}': ` : ''}${message}`, {
    ...(path ? { path } : {}),
  }, { cause: err });
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(
      file,
      { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true },
      (err, zip) => {
        if (!err) return resolve(zip);
        // An operating-system error (ENOENT, EIO) is ours, not the uploader's.
        reject((err as NodeJS.ErrnoException).code ? err : invalidZip(err));
      },
    );
  });
}

/** Resolves with the next central-directory record, or null at the end. Reads no file data. */
function nextEntry(zip: yauzl.ZipFile): Promise<ZipEntry | null> {
  return new Promise((resolve, reject) => {
    const done = () => {
      zip.off('entry', onEntry);
      zip.off('end', onEnd);
      zip.off('error', onError);
    };
    const onEntry = (entry: ZipEntry) => (done(), resolve(entry));
    const onEnd = () => (done(), resolve(null));
    const onError = (err: unknown) => (done(), reject(invalidZip(err)));
    zip.on('entry', onEntry);
    zip.on('end', onEnd);
    zip.on('error', onError);
    zip.readEntry();
  });
}

function openEntryStream(zip: yauzl.ZipFile, entry: ZipEntry, path: string): Promise<Readable> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (err, stream) => (err ? reject(invalidZip(err, path)) : resolve(stream)));
  });
}

/**
 * Walks a zip file through its central directory, one entry at a time. Entry data is inflated only when the
 * visitor calls `read()`, and is counted byte by byte as it is inflated: the sizes in the headers are used to refuse
 * early, never to trust. yauzl's own size check (an entry that inflates to more or fewer bytes than its header
 * says is an error) stays on as a second line.
 */
export async function walkZip(file: string, opts: WalkOptions, visit: ArchiveVisitor): Promise<void> {
  const { limits, signal } = opts;
  signal?.throwIfAborted();
  const compressedBytes = (await fs.promises.stat(file)).size;
  const zip = await openZip(file);
  // Errors arrive through nextEntry's listener; this one keeps a stray late error from crashing the process.
  const swallow = () => {};
  zip.on('error', swallow);
  const meter = new ByteMeter(limits.maxTotalBytes, { compressedBytes, maxRatio: limits.maxCompressionRatio });
  try {
    checkEntryCount(zip.entryCount, limits);
    let count = 0;
    // The declared sizes of the entries read, summed: reading that would take the archive past the ratio is
    // refused before the entry is inflated. The meter counts what is actually inflated.
    let declared = 0;
    for (;;) {
      signal?.throwIfAborted();
      const entry = await nextEntry(zip);
      if (!entry) break;
      checkEntryCount(++count, limits);
      const rawPath = getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, true);
      const segments = archivePathSegments(rawPath);
      const mode = UNIX_HOSTS.has(entry.versionMadeBy >>> 8) ? (entry.externalFileAttributes >>> 16) & S_IFMT : 0;
      if (mode === S_IFLNK) {
        throw new IngestError('UNSAFE_PATH', `archive contains a symbolic link: '${rawPath}'`, { path: rawPath });
      }
      if (mode !== 0 && mode !== S_IFREG && mode !== S_IFDIR) {
        throw new IngestError('UNSAFE_PATH', `archive contains a special file: '${rawPath}'`, { path: rawPath });
      }
      const isDirectory = mode === S_IFDIR || /[/\\]$/.test(rawPath) || segments.length === 0;
      const unreadable = entry.isEncrypted()
        ? 'encrypted'
        : entry.compressionMethod !== 0 && entry.compressionMethod !== 8
          ? `unsupported compression method ${entry.compressionMethod}`
          : null;
      let used = false;
      await visit({
        rawPath,
        segments,
        kind: isDirectory ? 'directory' : 'file',
        declaredSize: entry.uncompressedSize,
        unreadable,
        read: async () => {
          if (used) throw new Error(`'${rawPath}' was already read`);
          used = true;
          if (unreadable) throw new IngestError('INVALID_ARCHIVE', `cannot read '${rawPath}': ${unreadable}`);
          if (entry.uncompressedSize > limits.maxEntryBytes) {
            throw entryTooLarge(rawPath, entry.uncompressedSize, limits.maxEntryBytes);
          }
          if (
            entry.uncompressedSize > RATIO_GRACE_BYTES &&
            entry.uncompressedSize > entry.compressedSize * limits.maxCompressionRatio
          ) {
            throw ratioExceeded(`'${rawPath}'`, entry.uncompressedSize, entry.compressedSize, limits.maxCompressionRatio);
          }
          declared += entry.uncompressedSize;
          if (declared > RATIO_GRACE_BYTES && declared > compressedBytes * limits.maxCompressionRatio) {
            throw ratioExceeded('the archive', declared, compressedBytes, limits.maxCompressionRatio);
          }
          const stream = await openEntryStream(zip, entry, rawPath);
          try {
            return await collectEntryData(stream, {
              path: rawPath,
              meter,
              maxBytes: limits.maxEntryBytes,
              compressedSize: entry.compressedSize,
              maxRatio: limits.maxCompressionRatio,
              keep: true,
              signal,
            });
          } catch (err) {
            throw err instanceof IngestError || signal?.aborted ? err : invalidZip(err, rawPath);
          } finally {
            stream.destroy();
          }
        },
      });
    }
  } finally {
    // The file descriptor closes once the last entry stream has let go of it; wait for that, so that the caller
    // may delete the file as soon as this settles.
    if (zip.isOpen) {
      const closed = new Promise((resolve) => zip.once('close', resolve));
      zip.close();
      await closed;
    }
  }
}

// What `datasets push` uploads: an archive file as it is, or a folder zipped on the fly (entries stored, not
// compressed: photos are compressed already, and a stored zip has a size known before the first byte is sent).
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import yazl from 'yazl';
import { hasImageName, IngestError, isJunkPath, planLayout } from '@graft/layout';
import { CliError } from './errors';

export interface UploadSource {
  stream: Readable;
  /** Bytes that will be sent, where known in advance. */
  size: number | undefined;
  contentType: string;
  /** A default dataset name: the folder's or archive's base name. */
  name: string;
  /** Files in the zip (folders only). */
  files?: number;
  kind: 'folder' | 'zip' | 'tar' | 'tar.gz';
}

export class SourceError extends CliError {
  constructor(message: string) {
    super('INVALID_SOURCE', message);
  }
}

const JUNK = new Set(['Thumbs.db', 'desktop.ini', '__MACOSX']);

/** Regular files under `dir` (following links), relative paths with '/' separators, sorted; hidden files skipped. */
export async function listFiles(dir: string): Promise<{ rel: string; abs: string; size: number; mtime: Date }[]> {
  const out: { rel: string; abs: string; size: number; mtime: Date }[] = [];
  const walk = async (abs: string, rel: string, depth: number) => {
    if (depth > 32) return;
    const entries = await fs.promises.readdir(abs, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.') || JUNK.has(e.name)) continue;
      const a = path.join(abs, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      const st = await fs.promises.stat(a).catch(() => null);
      if (!st) continue;
      if (st.isDirectory()) await walk(a, r, depth + 1);
      else if (st.isFile()) out.push({ rel: r, abs: a, size: st.size, mtime: st.mtime });
    }
  };
  await walk(dir, '', 0);
  return out;
}

/**
 * Refuses, before any byte is sent, a folder the service would refuse for its layout: no images in class folders,
 * a layout that fits neither <class>/<image> nor <split>/<class>/<image>, or fewer than two classes to train on.
 */
export function checkFolderLayout(dir: string, rels: readonly string[]): void {
  const images = rels.map((rel) => ({ path: rel, segments: rel.split('/') })).filter((f) => !isJunkPath(f.segments) && hasImageName(f.path));
  let classes: string[];
  try {
    classes = planLayout(images).classes;
  } catch (err) {
    if (err instanceof IngestError) throw new SourceError(`'${dir}': ${err.message}`);
    throw err;
  }
  if (classes.length < 2) {
    throw new SourceError(
      `'${dir}' has ${classes.length ? `one class (${classes[0]})` : 'no class'} to train on; a classifier needs at least two class folders, e.g. ${path.join(dir, 'cats')} and ${path.join(dir, 'dogs')}`,
    );
  }
}

/** A zip of the folder as a stream, and its exact size. */
export async function zipFolder(dir: string): Promise<{ stream: Readable; size: number; files: number }> {
  const files = await listFiles(dir);
  if (!files.length) throw new SourceError(`'${dir}' holds no files; a dataset folder holds <class>/<image> or <split>/<class>/<image>`);
  checkFolderLayout(dir, files.map((f) => f.rel));
  const zip = new yazl.ZipFile();
  for (const f of files) zip.addFile(f.abs, f.rel, { compress: false, mtime: f.mtime });
  // yazl passes the final size to the callback (its type definitions leave the parameter out). Its size counts a
  // zip64 end record once the central directory passes 64 KiB (about 1,000 files) while its writer adds one only
  // past 4 GiB, so the size announced would be 76 bytes too many: with the zip64 end record always written, both agree.
  const end = zip.end.bind(zip) as unknown as (opts: { forceZip64Format: boolean }, cb: (total: number) => void) => void;
  const size = await new Promise<number>((resolve) => end({ forceZip64Format: true }, resolve));
  return { stream: zip.outputStream as unknown as Readable, size: size >= 0 ? size : NaN, files: files.length };
}

function archiveKind(file: string, head: Buffer): UploadSource['kind'] | null {
  const lower = file.toLowerCase();
  if (lower.endsWith('.zip')) return 'zip';
  if (lower.endsWith('.tar.gz') || lower.endsWith('.tgz')) return 'tar.gz';
  if (lower.endsWith('.tar')) return 'tar';
  if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'zip';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  return null;
}

const CONTENT_TYPES: Record<UploadSource['kind'], string> = {
  folder: 'application/zip',
  zip: 'application/zip',
  tar: 'application/x-tar',
  'tar.gz': 'application/gzip',
};

/** Opens a folder or an archive file for upload. */
export async function openSource(p: string): Promise<UploadSource> {
  const st = await fs.promises.stat(p).catch(() => null);
  if (!st) throw new SourceError(`'${p}' does not exist`);
  const base = path.basename(path.resolve(p));
  if (st.isDirectory()) {
    const z = await zipFolder(p);
    return { stream: z.stream, size: Number.isNaN(z.size) ? undefined : z.size, contentType: CONTENT_TYPES.folder, name: base, files: z.files, kind: 'folder' };
  }
  if (!st.isFile()) throw new SourceError(`'${p}' is neither a folder nor a file`);
  const fh = await fs.promises.open(p, 'r');
  const head = Buffer.alloc(512);
  const { bytesRead } = await fh.read(head, 0, 512, 0);
  await fh.close();
  const kind = archiveKind(p, head.subarray(0, bytesRead));
  if (!kind) throw new SourceError(`'${p}' is not a zip, tar or tar.gz archive; push a folder or one of those`);
  const name = base.replace(/\.(zip|tgz|tar\.gz|tar)$/i, '') || base;
  return { stream: fs.createReadStream(p), size: st.size, contentType: CONTENT_TYPES[kind], name, kind };
}

/** Passes bytes through, calling `onBytes` with the running total. */
export function counting(onBytes: (total: number) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      total += chunk.length;
      onBytes(total);
      cb(null, chunk);
    },
  });
}

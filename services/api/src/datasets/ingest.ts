import { createHash } from 'node:crypto';
import { walkArchive, type ArchiveFormat } from './archive';
import { ImageInspector, type ImageFormat } from './images';
import type { Fingerprint } from './fingerprint';
import { resolveLimits, type IngestLimits } from './ingest-limits';
import { hasImageName, IngestError, isJunkPath, planLayout, type LayoutFile, type Placement, type Split, type StoredImageKey } from '@graft/layout';

export { detectArchiveFileFormat, detectArchiveFormat, type ArchiveFormat } from './archive';
export { IngestError, type IngestErrorCode, type IngestErrorDetails, type StoredImageKey } from '@graft/layout';
export { DEFAULT_INGEST_LIMITS, type IngestLimits } from './ingest-limits';

export interface IngestedImage {
  /** Stable within the dataset: made from the content hash (`img_` and 20 hex digits). */
  id: string;
  split: Split;
  label: string;
  /** Path inside the archive. */
  path: string;
  sha256: string;
  format: ImageFormat;
  /** Size of the stored pixel grid (before any EXIF orientation). */
  width: number;
  height: number;
  bytes: number;
  fingerprint: Fingerprint;
}

/** The id of an image with this content hash. */
export const imageIdOf = (sha256: string) => `img_${sha256.slice(0, 20)}`;

export interface IngestResult {
  /** Classes of the train split, sorted. */
  classes: string[];
  /** Accepted unique images per split and class. */
  splits: Record<string, Record<string, number>>;
  /** Accepted unique images, in archive order. */
  images: IngestedImage[];
  imageCount: number;
  /** Bytes of the accepted images as stored. */
  bytes: number;
  /** Files that were read and refused, in archive order (the first 1000; a warning gives the full count). */
  rejected: { path: string; reason: string }[];
  /** Files whose bytes repeat an earlier file's; each image is kept once, at its first path. */
  duplicates: number;
  /** Repeats under another split or class than their first copy's (the first 1000), in archive order. */
  copies: { path: string; split: Split; label: string; firstPath: string }[];
  warnings: string[];
}

export interface IngestOptions {
  limits?: Partial<IngestLimits>;
  /** Stores one accepted image's original bytes. Called once per unique image, up to PUTS_AT_ONCE at a time. */
  put(key: StoredImageKey, data: Buffer): Promise<void>;
  signal?: AbortSignal;
  /** Images decoded at the same time; default 4. */
  concurrency?: number;
}

export const DEFAULT_INGEST_CONCURRENCY = 4;
export const MIN_IMAGES_PER_CLASS = 20;
/** Largest / smallest class in train at or above which a warning is given. */
export const IMBALANCE_WARNING_RATIO = 3;
const MAX_LISTED_REJECTIONS = 1000;
/** Bytes of images read ahead while every decoder is busy, and of decoded images waiting for a put. */
const READ_AHEAD_BYTES = 64 * 1024 * 1024;
/**
 * Images stored at the same time, apart from the decoders: a put is mostly waiting on the store. Dogs vs Cats' 3,000
 * images through a proxy adding 20 ms a request (bench/ingest.ts --latency): 117 images/s with each put holding a
 * decoder's slot, 204 apart; 50 ms: 64 against 204.
 */
export const PUTS_AT_ONCE = 16;

/**
 * Runs at most `size` tasks at a time, with up to `backlog` more (and `backlogBytes` of their data) waiting for a
 * slot, so that the archive reader keeps reading ahead while every decoder is busy. Remembers the first task that
 * throws.
 */
class TaskPool {
  private readonly pending = new Set<Promise<void>>();
  private active = 0;
  private waitingBytes = 0;
  private readonly slots: (() => void)[] = [];
  failure: { error: unknown } | null = null;

  constructor(
    private readonly size: number,
    private readonly backlog: number,
    private readonly backlogBytes: number,
  ) {}

  async run(bytes: number, task: () => Promise<void>): Promise<void> {
    while (
      this.pending.size >= this.size + this.backlog ||
      (this.pending.size >= this.size && this.waitingBytes + bytes > this.backlogBytes)
    ) {
      await Promise.race(this.pending);
    }
    if (this.failure) throw this.failure.error;
    const p: Promise<void> = this.inSlot(bytes, task)
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  private async inSlot(bytes: number, task: () => Promise<void>): Promise<void> {
    if (this.active >= this.size) {
      this.waitingBytes += bytes;
      await new Promise<void>((go) => this.slots.push(go));
      this.waitingBytes -= bytes;
    } else {
      this.active++;
    }
    try {
      await task();
    } finally {
      const next = this.slots.shift();
      if (next) next();
      else this.active--;
    }
  }

  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}

function toIngestError(err: unknown, signal: AbortSignal | undefined): IngestError {
  if (err instanceof IngestError) return err;
  if (signal?.aborted) return new IngestError('ABORTED', 'the ingest was aborted', {}, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new IngestError('INGEST_FAILED', `the ingest failed: ${message}`, {}, { cause: err });
}

/**
 * Ingests an uploaded dataset archive that lies in a local file.
 *
 * Two passes over the archive. The first reads only names (zip: the central directory; tar: headers, draining the
 * data) and refuses the whole upload for an unsafe entry, a broken limit or a bad layout before anything is
 * decoded or stored. The second reads each image file of the dataset into memory (up to `maxEntryBytes` each, a few
 * ahead of the decoders), hashes it, skips repeats, decodes every pixel (`concurrency` at a time) and hands the
 * original bytes of each accepted image to `put`.
 *
 * What is read: files whose names end like an image (.jpg, .png, .webp, .gif, …) inside class folders. Other files
 * in class folders are ignored with a warning; junk (`__MACOSX/`, dotfiles, Thumbs.db) and files beside the class
 * folders are skipped. Which image files are refused (listed in `rejected`, the upload goes on): formats other
 * than JPEG, PNG and WebP, files that do not decode to the last pixel, images over `maxImagePixels`. Which refuse
 * the whole upload: see IngestErrorCode; in particular a train class left with no usable image is EMPTY_CLASS.
 *
 * Every failure is an IngestError whose `details.written` lists the keys `put` was called with; by the time it
 * is thrown the archive is closed and no `put` is still running, so the caller can delete exactly those.
 */
export async function ingestArchive(file: string, format: ArchiveFormat, opts: IngestOptions): Promise<IngestResult> {
  const written: StoredImageKey[] = [];
  try {
    return await ingest(file, format, opts, written);
  } catch (err) {
    const error = toIngestError(err, opts.signal);
    const details = { ...error.details };
    Object.defineProperty(details, 'written', { value: [...written], enumerable: false, writable: true, configurable: true });
    error.details = details;
    throw error;
  }
}

type Rejection = { order: number; path: string; reason: string; label: string };
type CrossDuplicate = { path: string; split: Split; label: string; first: string };

async function ingest(
  file: string,
  format: ArchiveFormat,
  opts: IngestOptions,
  written: StoredImageKey[],
): Promise<IngestResult> {
  const limits = resolveLimits(opts.limits);
  const { plan, strays } = await planArchive(file, format, limits, opts.signal);
  const stored = await storeImages(file, format, plan, limits, opts, written);
  const { images, rejected } = stored;
  if (images.length === 0) {
    const example = rejected[0] ? ` (e.g. '${rejected[0].path}': ${rejected[0].reason})` : '';
    throw new IngestError('NO_IMAGES', `the archive contains no usable images; ${rejected.length} were rejected${example}`, {
      rejected: rejected.slice(0, 20).map(({ path, reason }) => ({ path, reason })),
    });
  }
  const splits = countSplits(images, plan.classes);
  const train = splits.train ?? {};
  const empty = plan.classes.filter((c) => !train[c]);
  if (empty.length > 0) {
    const bad = rejected.find((r) => r.label === empty[0]);
    throw new IngestError(
      'EMPTY_CLASS',
      `class '${empty[0]}' has no usable training images` + (bad ? ` (e.g. '${bad.path}': ${bad.reason})` : ''),
      { classes: empty },
    );
  }
  const storedPaths = new Set(images.map((im) => im.path));
  return {
    classes: plan.classes,
    splits,
    images,
    imageCount: images.length,
    bytes: images.reduce((sum, image) => sum + image.bytes, 0),
    rejected: rejected.slice(0, MAX_LISTED_REJECTIONS).map(({ path, reason }) => ({ path, reason })),
    duplicates: stored.duplicates,
    copies: stored.crossDuplicates
      .filter((d) => storedPaths.has(d.first))
      .slice(0, MAX_LISTED_REJECTIONS)
      .map(({ path, split, label, first }) => ({ path, split, label, firstPath: first })),
    warnings: datasetWarnings(plan, strays, splits, stored.crossDuplicates, rejected.length),
  };
}

type LayoutPlan = ReturnType<typeof planLayout>;

/**
 * The first pass: names and declared sizes only. Refuses the upload for a layout with fewer than two classes, an
 * image over the per-file limit or images over the total; returns the layout and the files in class folders that
 * are not images by name.
 */
async function planArchive(
  file: string,
  format: ArchiveFormat,
  limits: IngestLimits,
  signal: AbortSignal | undefined,
): Promise<{ plan: LayoutPlan; strays: LayoutFile[] }> {
  const candidates: (LayoutFile & { size: number })[] = [];
  const others: LayoutFile[] = [];
  await walkArchive(file, format, { limits, signal }, async (entry) => {
    if (entry.kind === 'directory' || isJunkPath(entry.segments)) return;
    const file = { path: entry.rawPath, segments: entry.segments, size: entry.declaredSize };
    (hasImageName(entry.segments[entry.segments.length - 1]!) ? candidates : others).push(file);
  });
  const plan = planLayout(candidates);
  if (plan.classes.length < 2) {
    throw new IngestError(
      'TOO_FEW_CLASSES',
      `the archive has ${plan.classes.length === 1 ? `only one class ('${plan.classes[0]}')` : 'no classes'} in train; ` +
        'at least 2 are needed to train a classifier',
      { classes: plan.classes },
    );
  }
  let declaredTotal = 0;
  for (const c of candidates) {
    if (!plan.place(c.segments)) continue;
    if (c.size > limits.maxEntryBytes) {
      throw new IngestError('ENTRY_TOO_LARGE', `'${c.path}' is larger than the per-file limit of ${limits.maxEntryBytes} bytes`, {
        path: c.path,
        limit: limits.maxEntryBytes,
        size: c.size,
      });
    }
    declaredTotal += c.size;
  }
  if (declaredTotal > limits.maxTotalBytes) {
    throw new IngestError('ARCHIVE_TOO_LARGE', `the images in the archive hold more than ${limits.maxTotalBytes} bytes`, {
      limit: limits.maxTotalBytes,
    });
  }
  return { plan, strays: others.filter((f) => plan.place(f.segments)) };
}

interface Stored {
  /** Accepted unique images, in archive order. */
  images: IngestedImage[];
  /** Refused files, in archive order. */
  rejected: Rejection[];
  duplicates: number;
  crossDuplicates: CrossDuplicate[];
}

/**
 * The second pass: reads each placed image file, hashes it, skips repeats, decodes it (`concurrency` at a time,
 * reading ahead while every decoder is busy) and hands the accepted ones to `put` (PUTS_AT_ONCE at a time), recording
 * each key in `written` first. Waits for every task to end before it returns or throws.
 */
async function storeImages(
  file: string,
  format: ArchiveFormat,
  plan: LayoutPlan,
  limits: IngestLimits,
  opts: IngestOptions,
  written: StoredImageKey[],
): Promise<Stored> {
  const { signal } = opts;
  const wanted = Math.floor(opts.concurrency ?? DEFAULT_INGEST_CONCURRENCY);
  const concurrency = Number.isFinite(wanted) ? Math.max(1, Math.min(32, wanted)) : DEFAULT_INGEST_CONCURRENCY;
  const inspector = new ImageInspector({ maxImagePixels: limits.maxImagePixels });
  const pool = new TaskPool(concurrency, concurrency, READ_AHEAD_BYTES);
  const puts = new TaskPool(PUTS_AT_ONCE, PUTS_AT_ONCE, READ_AHEAD_BYTES);
  const accepted: { order: number; image: IngestedImage }[] = [];
  const rejected: Rejection[] = [];
  const seen = new Map<string, Placement & { path: string }>();
  const crossDuplicates: CrossDuplicate[] = [];
  let duplicates = 0;
  let order = 0;
  let stopping = false;

  const stopped = () => stopping || pool.failure !== null || puts.failure !== null || signal?.aborted === true;
  const processImage = async (n: number, path: string, placement: Placement, sha256: string, data: Buffer) => {
    if (stopped()) return;
    const inspected = await inspector.inspect(data);
    if (!inspected.ok) {
      rejected.push({ order: n, path, reason: inspected.reason, label: placement.label });
      return;
    }
    // Stored apart from the decoders, so that a slow store does not hold a decoder's slot.
    await puts.run(data.length, async () => {
      if (stopped()) return;
      const key = { sha256, format: inspected.format };
      written.push(key);
      try {
        await opts.put(key, data);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        throw new IngestError('STORAGE_FAILED', `storing '${path}' failed: ${message}`, { path }, { cause: err });
      }
      const { width, height, fingerprint } = inspected;
      accepted.push({
        order: n,
        image: { id: imageIdOf(sha256), ...placement, path, sha256, format: inspected.format, width, height, bytes: data.length, fingerprint },
      });
    });
  };

  try {
    await walkArchive(file, format, { limits, signal }, async (entry) => {
      if (pool.failure) throw pool.failure.error;
      if (puts.failure) throw puts.failure.error;
      if (entry.kind === 'directory' || isJunkPath(entry.segments)) return;
      if (!hasImageName(entry.segments[entry.segments.length - 1]!)) return;
      const placement = plan.place(entry.segments);
      if (!placement) return;
      const n = order++;
      const path = entry.rawPath;
      if (entry.unreadable) {
        rejected.push({ order: n, path, reason: `cannot be read: ${entry.unreadable}`, label: placement.label });
        return;
      }
      const data = await entry.read();
      const sha256 = createHash('sha256').update(data).digest('hex');
      const first = seen.get(sha256);
      if (first) {
        duplicates++;
        if (first.split !== placement.split || first.label !== placement.label) {
          crossDuplicates.push({ path, split: placement.split, label: placement.label, first: first.path });
        }
        return;
      }
      seen.set(sha256, { ...placement, path });
      await pool.run(data.length, () => processImage(n, path, placement, sha256, data));
    });
  } catch (err) {
    stopping = true;
    await pool.drain();
    await puts.drain();
    throw err;
  }
  await pool.drain();
  await puts.drain();
  if (pool.failure) throw pool.failure.error;
  if (puts.failure) throw puts.failure.error;
  // An abort after the archive was read leaves the puts still queued undone: the ingest is not complete.
  signal?.throwIfAborted();
  accepted.sort((a, b) => a.order - b.order);
  rejected.sort((a, b) => a.order - b.order);
  return { images: accepted.map((a) => a.image), rejected, duplicates, crossDuplicates };
}

/** Accepted images per split and class (classes sorted); train lists every class of the layout, even at 0. */
function countSplits(images: readonly IngestedImage[], classes: readonly string[]): Record<string, Record<string, number>> {
  const splits: Record<string, Record<string, number>> = {};
  for (const split of ['train', 'validation', 'test'] as const) {
    const counts: Record<string, number> = {};
    if (split === 'train') for (const c of classes) counts[c] = 0;
    for (const image of images) if (image.split === split) counts[image.label] = (counts[image.label] ?? 0) + 1;
    if (Object.values(counts).some((n) => n > 0)) {
      splits[split] = Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
  }
  return splits;
}

/**
 * What the upload is told besides its counts: the layout's warnings, then ignored files, small and imbalanced
 * classes, splits missing a class, copies under another class or split, and a list of rejections cut short.
 */
function datasetWarnings(
  plan: LayoutPlan,
  strays: readonly LayoutFile[],
  splits: Record<string, Record<string, number>>,
  crossDuplicates: readonly CrossDuplicate[],
  rejectedCount: number,
): string[] {
  const train = splits.train ?? {};
  const warnings = [...plan.warnings];
  if (strays.length > 0) {
    warnings.push(
      `ignored ${strays.length} file${strays.length === 1 ? '' : 's'} in class folders that ` +
        `${strays.length === 1 ? 'is' : 'are'} not an image by name (e.g. '${strays[0]!.path}')`,
    );
  }
  for (const c of plan.classes) {
    if (train[c]! < MIN_IMAGES_PER_CLASS) {
      warnings.push(`class '${c}' has ${train[c]} images; at least ${MIN_IMAGES_PER_CLASS} per class is recommended`);
    }
  }
  const sizes = plan.classes.map((c) => [c, train[c]!] as const).sort((a, b) => b[1] - a[1]);
  const [largest, smallest] = [sizes[0]!, sizes[sizes.length - 1]!];
  if (largest[1] >= IMBALANCE_WARNING_RATIO * smallest[1]) {
    warnings.push(
      `classes are imbalanced: '${largest[0]}' has ${largest[1]} training images but '${smallest[0]}' has ` +
        `${smallest[1]} (${(largest[1] / smallest[1]).toFixed(1)}x); consider balancing them`,
    );
  }
  for (const split of ['validation', 'test'] as const) {
    const counts = splits[split];
    if (!counts) continue;
    const missing = plan.classes.filter((c) => !counts[c]);
    if (missing.length > 0) warnings.push(`${split} has no images of ${missing.map((c) => `'${c}'`).join(', ')}`);
  }
  if (crossDuplicates.length > 0) {
    const d = crossDuplicates[0]!;
    warnings.push(
      `${crossDuplicates.length} image${crossDuplicates.length === 1 ? '' : 's'} also appear under another class ` +
        `or split (e.g. '${d.path}' repeats '${d.first}'); each was kept once, at its first path`,
    );
  }
  if (rejectedCount > MAX_LISTED_REJECTIONS) {
    warnings.push(`${rejectedCount} files were rejected; only the first ${MAX_LISTED_REJECTIONS} are listed`);
  }
  return warnings;
}

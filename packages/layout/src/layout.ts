import type { Split } from '@graft/contract';
import { IngestError } from './errors';

export type { Split };

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

/** Folder names taken as splits, compared case-insensitively. `val` and `valid` are common spellings of validation. */
const SPLIT_NAMES: Record<string, Split> = {
  train: 'train',
  validation: 'validation',
  val: 'validation',
  valid: 'validation',
  test: 'test',
};

export function splitOf(folder: string): Split | null {
  return SPLIT_NAMES[folder.toLowerCase()] ?? null;
}

export const MAX_CLASS_NAME_LENGTH = 100;

/**
 * The class name a folder stands for: Unicode NFC (macOS writes decomposed names), trimmed, case kept. Throws
 * INVALID_CLASS_NAME for an empty name, one over 100 characters, or one with control characters (C0, DEL, C1) or
 * bidirectional overrides, which could make a class display as another.
 */
export function className(folder: string, examplePath: string): string {
  const name = folder.normalize('NFC').trim();
  const length = [...name].length;
  let problem: string | null = null;
  if (length === 0) problem = 'is empty';
  else if (length > MAX_CLASS_NAME_LENGTH) problem = `is longer than ${MAX_CLASS_NAME_LENGTH} characters`;
  else if (/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u.test(name)) problem = 'contains control characters';
  if (problem) {
    throw new IngestError('INVALID_CLASS_NAME', `class name ${JSON.stringify(folder)} ${problem} (in '${examplePath}')`, {
      path: examplePath,
    });
  }
  return name;
}

/** A file that looks like an image, with its path as stored and its safe segments. */
export interface LayoutFile {
  path: string;
  segments: readonly string[];
}

export interface Placement {
  split: Split;
  label: string;
}

export interface LayoutPlan {
  /** `<class>/<image>` (all train) or `<split>/<class>/<image>`. */
  kind: 'classes' | 'splits';
  /** The single top-level folder that wraps the layout, or null. */
  wrapper: string | null;
  /** Class names found in train, sorted. */
  classes: string[];
  warnings: string[];
  /** Where a file at these segments belongs, or null when it is not part of the dataset. */
  place(segments: readonly string[]): Placement | null;
}

const EXPECTED =
  'expected <class>/<image> or <split>/<class>/<image> with split train, validation or test, ' +
  'optionally inside one top-level folder';

type Shape = 'classes' | 'splits' | 'bad';

function shapeOf(segments: readonly string[]): Shape {
  if (segments.length === 2) return 'classes';
  if (segments.length === 3 && splitOf(segments[0]!)) return 'splits';
  return 'bad';
}

interface Classified {
  kind?: 'classes' | 'splits';
  error?: IngestError;
}

function classify(files: readonly LayoutFile[], depthOf: (f: LayoutFile) => readonly string[]): Classified {
  const inFolders = files.filter((f) => depthOf(f).length >= 2);
  if (inFolders.length === 0) {
    const example = files[0]!.path;
    return {
      error: new IngestError('INVALID_LAYOUT', `images must be inside class folders ('${example}' is not); ${EXPECTED}`, {
        path: example,
      }),
    };
  }
  let firstClasses: LayoutFile | undefined;
  let firstSplits: LayoutFile | undefined;
  for (const f of inFolders) {
    const shape = shapeOf(depthOf(f));
    if (shape === 'bad') {
      const why = depthOf(f).length > 3 ? 'is nested too deeply' : 'does not fit';
      return {
        error: new IngestError('INVALID_LAYOUT', `'${f.path}' ${why}: ${EXPECTED}`, { path: f.path }),
      };
    }
    if (shape === 'classes') firstClasses ??= f;
    else firstSplits ??= f;
  }
  if (firstClasses && firstSplits) {
    return {
      error: new IngestError(
        'INVALID_LAYOUT',
        `archive mixes layouts: '${firstClasses.path}' is <class>/<image> but '${firstSplits.path}' is ` +
          `<split>/<class>/<image>; use one of them`,
        { path: firstClasses.path, other: firstSplits.path },
      ),
    };
  }
  return { kind: firstSplits ? 'splits' : 'classes' };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Works out the dataset's layout from the paths of its image files (junk already left out), before any data is
 * read. A single top-level folder around either layout (what zipping a folder produces) is looked through.
 *
 * Policy: images directly at the top level, beside the class folders, are ignored with a warning; classes that
 * appear in validation or test but not in train are ignored with a warning (a model cannot predict a class it never
 * trained on); a split layout without a train folder is INVALID_LAYOUT.
 */
export function planLayout(files: readonly LayoutFile[]): LayoutPlan {
  if (files.length === 0) throw new IngestError('NO_IMAGES', 'the archive contains no images');

  let wrapper: string | null = null;
  let result = classify(files, (f) => f.segments);
  if (result.error) {
    const top = files[0]!.segments[0]!;
    if (files.every((f) => f.segments.length >= 2 && f.segments[0] === top)) {
      wrapper = top;
      result = classify(files, (f) => f.segments.slice(1));
    }
    if (result.error) throw result.error;
  }
  const kind = result.kind!;
  const inner = (segments: readonly string[]) => (wrapper === null ? segments : segments.slice(1));

  const names = new Map<string, string>();
  const nameOf = (folder: string, path: string) => {
    let name = names.get(folder);
    if (name === undefined) names.set(folder, (name = className(folder, path)));
    return name;
  };

  const trainClasses = new Set<string>();
  const outside: string[] = [];
  const ignored = new Map<string, number>();
  for (const f of files) {
    const segs = inner(f.segments);
    if (segs.length < 2) {
      outside.push(f.path);
      continue;
    }
    if (kind === 'classes') trainClasses.add(nameOf(segs[0]!, f.path));
    else if (splitOf(segs[0]!) === 'train') trainClasses.add(nameOf(segs[1]!, f.path));
  }
  if (kind === 'splits') {
    if (trainClasses.size === 0) {
      const example = files.find((f) => inner(f.segments).length === 3)!.path;
      throw new IngestError('INVALID_LAYOUT', `the archive has splits but no 'train' folder (e.g. '${example}'); ${EXPECTED}`, {
        path: example,
      });
    }
    for (const f of files) {
      const segs = inner(f.segments);
      if (segs.length !== 3) continue;
      const split = splitOf(segs[0]!)!;
      const label = nameOf(segs[1]!, f.path);
      if (split !== 'train' && !trainClasses.has(label)) {
        const key = `${split}\u0000${label}`;
        ignored.set(key, (ignored.get(key) ?? 0) + 1);
      }
    }
  }

  const warnings: string[] = [];
  if (outside.length > 0) {
    warnings.push(`ignored ${plural(outside.length, 'image')} outside class folders (e.g. '${outside[0]}')`);
  }
  for (const [key, count] of ignored) {
    const [split, label] = key.split('\u0000');
    warnings.push(`${split} class '${label}' is not in train; its ${count === 1 ? '1 image was' : `${count} images were`} ignored`);
  }
  const byLowerCase = new Map<string, string>();
  for (const name of [...trainClasses].sort()) {
    const other = byLowerCase.get(name.toLowerCase());
    if (other) warnings.push(`classes '${other}' and '${name}' differ only in case; they are kept apart`);
    else byLowerCase.set(name.toLowerCase(), name);
  }

  return {
    kind,
    wrapper,
    classes: [...trainClasses].sort(),
    warnings,
    place(segments) {
      if (wrapper !== null && segments[0] !== wrapper) return null;
      const segs = inner(segments);
      if (kind === 'classes') {
        return segs.length === 2 ? { split: 'train', label: nameOf(segs[0]!, segments.join('/')) } : null;
      }
      if (segs.length !== 3) return null;
      const split = splitOf(segs[0]!);
      if (!split) return null;
      const label = nameOf(segs[1]!, segments.join('/'));
      return split === 'train' || trainClasses.has(label) ? { split, label } : null;
    },
  };
}

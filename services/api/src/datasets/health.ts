// The health report of a dataset, made at upload from what the ingest measured: groups of near-identical images
// within a split, near-identical pairs across splits (leakage), exact copies the ingest kept once, class balance,
// tiny and extreme-aspect images, and classes far smaller than the rest. Pure: images in, report out.
import type { Split } from '@graft/layout';
import type { ClassBalance, ExactCopy, HealthReport as StoredHealthReport, HealthSummary, ImageRef, LeakagePair, NearDuplicateGroup } from '@graft/contract';
import type { Fingerprint } from './fingerprint';
import { DEFAULT_MATCH, findNearPairs, type MatchOptions, type NearPair } from './near-duplicates';

/** Shorter side under this many pixels: a tiny image (training scales it up several times). */
export const TINY_EDGE = 64;
/** Longer side at least this many times the shorter: an extreme aspect ratio (training squeezes or crops it hard). */
export const EXTREME_ASPECT = 3;
/** A train class with at most this share of the median of the other classes is far smaller than the rest. */
export const SMALL_CLASS_SHARE = 1 / 3;
/**
 * Images at most for the near-duplicate search: every pair is compared, about 0.1 microsecond a pair, so 20,000
 * images take some 20 s of the upload. Larger sets get the rest of the report and a finding that says so.
 */
export const MAX_COMPARED = 20_000;
/** Entries listed per kind of finding; the summary counts them all. */
export const MAX_LISTED = 1000;

/** The report as analyseDataset makes it; stored with the dataset's id. */
export type HealthReport = Omit<StoredHealthReport, 'datasetId'>;

const SPLIT_ORDER: readonly Split[] = ['train', 'validation', 'test'];

export interface HealthImage {
  id: string;
  path: string;
  split: Split;
  label: string;
  width: number;
  height: number;
  fingerprint: Fingerprint;
}

export interface HealthInput {
  classes: string[];
  splits: Record<string, Record<string, number>>;
  images: HealthImage[];
  /** Files whose bytes repeat an earlier image's, under another split or class. */
  copies: { path: string; split: Split; label: string; firstPath: string }[];
  match?: MatchOptions;
  /** MAX_COMPARED unless given. */
  maxCompared?: number;
}

const ref = (im: HealthImage): ImageRef => ({
  imageId: im.id,
  path: im.path,
  split: im.split,
  label: im.label,
  width: im.width,
  height: im.height,
});
const round3 = (x: number) => Math.round(Math.max(0, Math.min(1, x)) * 1000) / 1000;
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Connected components of the within-split pairs, largest first. */
function groupsOf(images: HealthImage[], pairs: NearPair[]): NearDuplicateGroup[] {
  const parent = images.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]!]!;
    return i;
  };
  const weakest = new Map<number, number>();
  for (const p of pairs) {
    const [ra, rb] = [find(p.a), find(p.b)];
    const w = Math.min(p.correlation, weakest.get(ra) ?? 1, weakest.get(rb) ?? 1);
    if (ra !== rb) parent[rb] = ra;
    weakest.set(find(p.a), w);
  }
  const members = new Map<number, number[]>();
  for (const p of pairs) {
    for (const i of [p.a, p.b]) {
      const r = find(i);
      const list = members.get(r) ?? [];
      if (!list.includes(i)) list.push(i);
      members.set(r, list);
    }
  }
  return [...members.entries()]
    .map(([root, idx]) => {
      const group = idx.sort((x, y) => x - y).map((i) => images[i]!);
      return {
        split: group[0]!.split,
        similarity: round3(weakest.get(root) ?? 1),
        mixedLabels: new Set(group.map((g) => g.label)).size > 1,
        images: group.map(ref),
      };
    })
    .sort((x, y) => y.images.length - x.images.length || y.similarity - x.similarity);
}

function classBalance(classes: string[], splits: Record<string, Record<string, number>>): ClassBalance {
  const train = splits.train ?? {};
  const counts = classes.map((c) => train[c] ?? 0);
  const smallClasses: ClassBalance['smallClasses'] = [];
  classes.forEach((c, i) => {
    const others = counts.filter((_, j) => j !== i).sort((a, b) => a - b);
    if (others.length === 0) return;
    const mid = others.length >> 1;
    const median = others.length % 2 ? others[mid]! : (others[mid - 1]! + others[mid]!) / 2;
    if (counts[i]! <= SMALL_CLASS_SHARE * median) smallClasses.push({ class: c, count: counts[i]!, othersMedian: median });
  });
  const positive = counts.filter((n) => n > 0);
  const imbalanceRatio = positive.length ? Math.round((Math.max(...positive) / Math.min(...positive)) * 100) / 100 : 1;
  return { counts: splits, imbalanceRatio, smallClasses };
}

function findingsOf(r: Omit<HealthReport, 'findings' | 'seconds'>): HealthReport['findings'] {
  const out: HealthReport['findings'] = [];
  const s = r.summary;
  if (s.leakagePairs > 0) {
    const e = r.leakage[0]!.images;
    out.push({
      kind: 'leakage',
      message:
        `${plural(s.leakedImages, 'image')} in validation or test ${s.leakedImages === 1 ? 'is a near-copy of an image' : 'are near-copies of images'} in an ` +
        `earlier split (${plural(s.leakagePairs, 'pair')}, e.g. '${e[1].path}' and '${e[0].path}'); their scores overstate the model. ` +
        'Remove them, or start the job with config.dropLeaked',
    });
  }
  const mixed = r.nearDuplicates.filter((g) => g.mixedLabels);
  if (mixed.length > 0) {
    out.push({
      kind: 'conflicting_labels',
      message: `${plural(mixed.length, 'group')} of near-identical images ${mixed.length === 1 ? 'carries' : 'carry'} different labels (e.g. ${mixed[0]!.images.map((i) => `'${i.path}'`).join(', ')})`,
    });
  }
  if (s.nearDuplicateGroups > 0) {
    out.push({
      kind: 'near_duplicates',
      message: `${plural(s.nearDuplicateImages, 'image')} ${s.nearDuplicateImages === 1 ? 'falls' : 'fall'} into ${plural(s.nearDuplicateGroups, 'group')} of near-identical images within a split (burst shots, re-saved or resized files)`,
    });
  }
  if (s.exactCopies > 0) {
    const c = r.exactCopies[0]!;
    out.push({
      kind: 'exact_copies',
      message: `${plural(s.exactCopies, 'file')} repeat an image under another split or class byte for byte (e.g. '${c.path}' repeats '${c.kept.path}'); each was kept once, at its first path`,
    });
  }
  for (const c of r.classBalance.smallClasses) {
    out.push({
      kind: 'small_class',
      message: `class '${c.class}' has ${c.count} training images, far fewer than the others (median ${c.othersMedian})`,
    });
  }
  if (s.tinyImages > 0) {
    out.push({ kind: 'tiny_images', message: `${plural(s.tinyImages, 'image')} ${s.tinyImages === 1 ? 'is' : 'are'} smaller than ${TINY_EDGE} px on a side (e.g. '${r.tinyImages[0]!.path}')` });
  }
  if (s.extremeAspectImages > 0) {
    out.push({
      kind: 'extreme_aspect',
      message: `${plural(s.extremeAspectImages, 'image')} ${s.extremeAspectImages === 1 ? 'is' : 'are'} at least ${EXTREME_ASPECT} times wider than tall or taller than wide (e.g. '${r.extremeAspectImages[0]!.path}')`,
    });
  }
  return out;
}

/** Analyses a dataset's images; a few thousand take about a second. */
export function analyseDataset(input: HealthInput): HealthReport {
  const t0 = performance.now();
  const match = input.match ?? DEFAULT_MATCH;
  const images = input.images;
  const compared = images.length <= (input.maxCompared ?? MAX_COMPARED);
  const pairs = compared ? findNearPairs(images.map((im) => im.fingerprint), match) : [];
  const within = pairs.filter((p) => images[p.a]!.split === images[p.b]!.split);
  const across = pairs.filter((p) => images[p.a]!.split !== images[p.b]!.split);
  const rank = (im: HealthImage) => SPLIT_ORDER.indexOf(im.split);

  const groups = groupsOf(images, within);
  const leakage: LeakagePair[] = across
    .map((p) => {
      const [first, second] = [images[p.a]!, images[p.b]!].sort((x, y) => rank(x) - rank(y)) as [HealthImage, HealthImage];
      return {
        similarity: round3(p.correlation),
        distance: p.distance,
        sameLabel: first.label === second.label,
        images: [ref(first), ref(second)] as [ImageRef, ImageRef],
      };
    })
    .sort((x, y) => y.similarity - x.similarity || x.distance - y.distance);
  const leakedImageIds = [...new Set(leakage.map((l) => l.images[1].imageId))];

  const byPath = new Map(images.map((im) => [im.path, im]));
  const exactCopies: ExactCopy[] = input.copies.flatMap((c) => {
    const kept = byPath.get(c.firstPath);
    return kept ? [{ path: c.path, split: c.split, label: c.label, kept: ref(kept) }] : [];
  });
  const tiny = images.filter((im) => Math.min(im.width, im.height) < TINY_EDGE).map(ref);
  const extreme = images
    .filter((im) => Math.max(im.width, im.height) >= EXTREME_ASPECT * Math.min(im.width, im.height))
    .map((im) => ({ ...ref(im), aspect: Math.round((Math.max(im.width, im.height) / Math.min(im.width, im.height)) * 100) / 100 }));
  const balance = classBalance(input.classes, input.splits);

  const body = {
    summary: {
      images: images.length,
      nearDuplicateGroups: groups.length,
      nearDuplicateImages: groups.reduce((n, g) => n + g.images.length, 0),
      leakagePairs: leakage.length,
      leakedImages: leakedImageIds.length,
      exactCopies: exactCopies.length,
      tinyImages: tiny.length,
      extremeAspectImages: extreme.length,
      smallClasses: balance.smallClasses.length,
    },
    classBalance: balance,
    nearDuplicates: groups.slice(0, MAX_LISTED),
    leakage: leakage.slice(0, MAX_LISTED),
    leakedImageIds,
    nearDuplicateImageIds: groups.map((g) => g.images.map((im) => im.imageId)),
    exactCopies: exactCopies.slice(0, MAX_LISTED),
    tinyImages: tiny.slice(0, MAX_LISTED),
    extremeAspectImages: extreme.slice(0, MAX_LISTED),
    thresholds: { ...match, tinyEdge: TINY_EDGE, extremeAspect: EXTREME_ASPECT, smallClassShare: SMALL_CLASS_SHARE },
    nearDuplicatesSearched: compared,
  };
  const findings = findingsOf(body);
  if (!compared) {
    findings.unshift({
      kind: 'near_duplicates_not_searched',
      message: `near-copies and leakage were not searched for: the dataset has ${images.length} images, over the ${input.maxCompared ?? MAX_COMPARED} compared pairwise`,
    });
  }
  return { ...body, findings, seconds: Math.round((performance.now() - t0) / 10) / 100 };
}

// Carving validation and test sets out of the training images where a dataset has none: stratified (the same
// fraction of every class) and seeded, so the same dataset and seed always give the same split.
import { createRng, deriveSeed, shuffleInPlace } from './random';

export interface ImageRef {
  key: string;
  label: number;
  /** Images of one group (near-copies of each other) are never carved apart: they stay in one split. */
  group?: string;
}

export interface Splits {
  train: ImageRef[];
  validation: ImageRef[];
  test: ImageRef[];
}

/** At most `n` items spread evenly over `items` (all of them where there are no more than `n`). */
export function spread<T>(items: readonly T[], n: number): T[] {
  if (items.length <= n) return [...items];
  return Array.from({ length: n }, (_, i) => items[Math.floor((i * items.length) / n)]!);
}

export interface SplitConfig {
  validation: number;
  test: number;
  seed: number;
}

/** How many of n images a fraction takes: at least one where the fraction is positive, never all of them. */
function share(n: number, fraction: number, taken: number): number {
  if (fraction <= 0 || n - taken < 2) return 0;
  return Math.min(n - taken - 1, Math.max(1, Math.round(n * fraction)));
}

/**
 * Fills an empty validation or test split with `config.validation` / `config.test` of each class's training
 * images; splits that already have images are kept as they are. A group of near-copies goes whole to one split
 * (filed under the label of its first image by key), so the carved splits do not hold copies of training images;
 * at least one image of each class stays in train.
 */
export function carveSplits(splits: Splits, config: SplitConfig, numClasses: number): Splits & { carved: { validation: boolean; test: boolean } } {
  const carveVal = splits.validation.length === 0 && config.validation > 0;
  const carveTest = splits.test.length === 0 && config.test > 0;
  if (!carveVal && !carveTest) {
    return { train: [...splits.train], validation: [...splits.validation], test: [...splits.test], carved: { validation: false, test: false } };
  }
  const train: ImageRef[] = [];
  const validation: ImageRef[] = [...splits.validation];
  const test: ImageRef[] = [...splits.test];
  // Sorted first, so the result does not depend on the order the images were listed in.
  const units = new Map<string, ImageRef[]>();
  for (const r of [...splits.train].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    const id = r.group === undefined ? `image:${r.key}` : `group:${r.group}`;
    const unit = units.get(id);
    if (unit) unit.push(r);
    else units.set(id, [r]);
  }
  for (let c = 0; c < numClasses; c++) {
    const mine = [...units.values()].filter((u) => u[0]!.label === c);
    shuffleInPlace(mine, createRng(deriveSeed(config.seed, 'split', c)));
    const n = mine.reduce((a, u) => a + u.length, 0);
    const nTest = carveTest ? share(n, config.test, 0) : 0;
    const nVal = carveVal ? share(n, config.validation, nTest) : 0;
    let placed = 0;
    for (const u of mine) {
      const fits = placed + u.length <= n - 1;
      const target = fits && placed < nTest ? test : fits && placed < nTest + nVal ? validation : train;
      target.push(...u);
      if (target !== train) placed += u.length;
    }
  }
  return { train, validation, test, carved: { validation: carveVal, test: carveTest } };
}

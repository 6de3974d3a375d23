// Carving validation and test sets out of the training images where a dataset has none: stratified (the same
// fraction of every class) and seeded, so the same dataset and seed always give the same split.
import { createRng, deriveSeed, shuffleInPlace } from './random';

export interface ImageRef {
  key: string;
  label: number;
}

export interface Splits {
  train: ImageRef[];
  validation: ImageRef[];
  test: ImageRef[];
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
 * images; splits that already have images are kept as they are.
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
  for (let c = 0; c < numClasses; c++) {
    // Sorted first, so the result does not depend on the order the images were listed in.
    const refs = splits.train.filter((r) => r.label === c).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    shuffleInPlace(refs, createRng(deriveSeed(config.seed, 'split', c)));
    const nTest = carveTest ? share(refs.length, config.test, 0) : 0;
    const nVal = carveVal ? share(refs.length, config.validation, nTest) : 0;
    test.push(...refs.slice(0, nTest));
    validation.push(...refs.slice(nTest, nTest + nVal));
    train.push(...refs.slice(nTest + nVal));
  }
  return { train, validation, test, carved: { validation: carveVal, test: carveTest } };
}

// The images of a `<split>/<class>/*` folder as the vision package's ImageRefs (keys are file paths).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { ImageRef, TrainOptions } from '@graft/vision';
import type { GraftConfig } from '@graft/config';

/** The class names of a dataset folder: the sub-folders of its train split, sorted. */
export function classLabels(dataset: string): string[] {
  return readdirSync(join(dataset, 'train')).sort();
}

/** Every file of a split folder, class by class in `labels` order, sorted by name. */
export function listSplit(dir: string, labels: string[]): ImageRef[] {
  const refs: ImageRef[] = [];
  labels.forEach((label, i) => {
    for (const f of readdirSync(join(dir, label)).sort()) refs.push({ key: join(dir, label, f), label: i });
  });
  return refs;
}

/** The first `n` files of a class-per-folder directory, the classes taken in turn (each sorted by name). */
export function interleavedFiles(dir: string, n: number): string[] {
  const perClass = readdirSync(dir).sort().map((c) => readdirSync(join(dir, c)).sort().map((f) => join(dir, c, f)));
  const files: string[] = [];
  for (let i = 0; files.length < n && perClass.some((l) => i < l.length); i++) for (const l of perClass) if (i < l.length && files.length < n) files.push(l[i]!);
  return files;
}

/**
 * What train() takes for a dataset folder besides the config, labels, splits and callbacks: images read by path,
 * the backbones from `models`, and the training settings of the environment as the worker takes them.
 */
export function folderTraining(models: string, training: GraftConfig['training']): Pick<TrainOptions, 'readImage' | 'backbones' | 'threads' | 'frozenEngine' | 'frozenPrecision'> {
  return {
    readImage: async (key) => new Uint8Array(readFileSync(key)),
    backbones: models,
    threads: training.threads,
    frozenEngine: training.frozenEngine,
    frozenPrecision: training.frozenPrecision,
  };
}
